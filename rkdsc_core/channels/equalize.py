"""One-tap equalisers for flat fading that also report the effective per-symbol SNR (DESIGN.md §3).

With y = h·x + n, n ~ CN(0, N0), E|x|² = 1 and a channel estimate h_hat whose error has variance
err_var, the effective SNR of symbol k is |h_hat_k|² / (N0 + err_var_k): what the receiver hands
the CAT decoder. Functions accept torch tensors or numpy arrays and return the same kind.
"""

from __future__ import annotations

import numpy as np
import torch

from rkdsc_core.channels._checks import check_symbols, from_torch, per_sample, to_torch
from rkdsc_core.channels.snr import linear_to_db

_TINY = 1e-30  # floor of |h|² and N0: huge but finite outputs (noiseless → ~300 dB), never NaN


def _prepare(
    y: object, h: object, noise_var: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """y, h as tensors on y's device/dtype, N0 as real [B, 1], and whether y came as numpy."""
    y_t, was_np = to_torch(y, "y")
    check_symbols(y_t, "y")
    h_t, _ = to_torch(h, "h")
    check_symbols(h_t, "h")
    if h_t.shape[0] != y_t.shape[0] or h_t.shape[1] not in (1, y_t.shape[1]):
        raise ValueError(f"h must have shape [{y_t.shape[0]}, {y_t.shape[1]} or 1]")
    real = y_t.real.dtype
    n0 = per_sample(noise_var, y_t.shape[0], "noise_var", device=y_t.device, dtype=real, minimum=0)
    return y_t, h_t.to(device=y_t.device, dtype=y_t.dtype), n0.unsqueeze(1), was_np


def _err_var(err_var: object, like: torch.Tensor) -> torch.Tensor:
    """err_var as a real tensor broadcastable to `like` [B, K]: scalar, [B] or [B, K]."""
    real = like.real.dtype
    if getattr(err_var, "ndim", 0) != 2:
        return per_sample(
            err_var, like.shape[0], "err_var", device=like.device, dtype=real, minimum=0
        )[:, None]
    e, _ = to_torch(err_var, "err_var")
    if e.shape != like.shape:
        raise ValueError(
            f"err_var must be a scalar, [B] or {tuple(like.shape)}, got {tuple(e.shape)}"
        )
    if torch.isnan(e).any() or (e < 0).any():
        raise ValueError("err_var must be >= 0 and not NaN")
    return e.to(device=like.device, dtype=real)


def _gain(h: torch.Tensor) -> torch.Tensor:
    return h.real.square() + h.imag.square()


def zf_equalize(
    y: torch.Tensor | np.ndarray,
    h: torch.Tensor | np.ndarray,
    noise_var: float | np.ndarray | torch.Tensor,
) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
    """Zero forcing: x_hat = y / h, effective SNR |h|² / N0 (the CSI is taken as exact).

    Args:
        y: complex64/complex128 [B, K] received symbols.
        h: complex [B, K] (or [B, 1]) channel (true or estimated).
        noise_var: N0, a scalar or [B], >= 0.

    Returns:
        (x_hat complex [B, K] like `y`, eff_snr_db real [B, K]), differentiable in `y`.
    """
    y_t, h_t, n0, was_np = _prepare(y, h, noise_var)
    gain = _gain(h_t)
    x_hat = y_t * h_t.conj() / gain.clamp_min(_TINY)
    eff = linear_to_db((gain / n0.clamp_min(_TINY)).expand_as(y_t.real))
    return from_torch(x_hat, was_np), from_torch(eff, was_np)


def mmse_equalize(
    y: torch.Tensor | np.ndarray,
    h: torch.Tensor | np.ndarray,
    noise_var: float | np.ndarray | torch.Tensor,
    err_var: float | np.ndarray | torch.Tensor = 0.0,
    unbiased: bool = True,
) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
    """MMSE one-tap equaliser that accounts for noise and channel-estimation error.

    The biased MMSE estimate is h*·y / (|h|² + N0 + err_var); `unbiased=True` (the default, as in
    Sionna's LMMSE equaliser) rescales it so that E[x_hat | x] = x, which for one tap equals y / h.
    Both report the same effective SNR |h|² / (N0 + err_var). With perfect CSI and no noise both
    return x exactly.

    Args:
        y: complex64/complex128 [B, K] received symbols.
        h: complex [B, K] (or [B, 1]) channel estimate.
        noise_var: N0, a scalar or [B], >= 0.
        err_var: variance of h − h_hat: a scalar, [B] or [B, K], >= 0 (0 for perfect CSI).
        unbiased: see above.

    Returns:
        (x_hat complex [B, K] like `y`, eff_snr_db real [B, K]), differentiable in `y`.
    """
    y_t, h_t, n0, was_np = _prepare(y, h, noise_var)
    err = _err_var(err_var, y_t)
    gain = _gain(h_t)
    if unbiased:
        x_hat = y_t * h_t.conj() / gain.clamp_min(_TINY)
    else:
        x_hat = y_t * h_t.conj() / (gain + n0 + err).clamp_min(_TINY)
    eff = linear_to_db((gain / (n0 + err).clamp_min(_TINY)).expand_as(y_t.real))
    return from_torch(x_hat, was_np), from_torch(eff, was_np)
