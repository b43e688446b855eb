"""Channel estimation from pilots: LS (per pilot, block-averaged, linearly interpolated) and LMMSE
with a Jakes time-correlation prior. Shared by the training channels and the numpy PHY.

Functions accept torch tensors or numpy arrays and return the same kind. Pilots are unit-modulus
known symbols at integer positions of a frame; the channel is flat (one complex gain per symbol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from rkdsc_core.channels._checks import (
    check_scalar,
    check_symbols,
    from_torch,
    per_sample,
    real_dtype,
    to_torch,
)

IndexLike = Sequence[int] | np.ndarray | torch.Tensor


def pilot_symbols(
    num_pilots: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.complex64
) -> torch.Tensor:
    """A fixed unit-modulus pilot sequence (a chirp e^{−jπk²/P}), complex `dtype` [P]."""
    p = int(check_scalar(num_pilots, "num_pilots", minimum=1))
    k = torch.arange(p, dtype=torch.float64)
    return torch.polar(torch.ones_like(k), -math.pi * k * k / p).to(device=device, dtype=dtype)


def pilot_positions(num_data: int, num_pilots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Evenly spread pilots in a frame of `num_data + num_pilots` symbols.

    Returns:
        (pilot_idx int64 [P], data_idx int64 [K]): sorted, disjoint, covering the frame.
    """
    k = int(check_scalar(num_data, "num_data", minimum=1))
    p = int(check_scalar(num_pilots, "num_pilots", minimum=1))
    n = k + p
    pilot_idx = torch.div((2 * torch.arange(p) + 1) * n, 2 * p, rounding_mode="floor")
    is_pilot = torch.zeros(n, dtype=torch.bool)
    is_pilot[pilot_idx] = True
    return pilot_idx, torch.nonzero(~is_pilot).squeeze(1)


def _indices(idx: IndexLike, name: str, length: int | None = None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
    if t.dim() != 1 or t.dtype.is_floating_point or t.dtype.is_complex:
        raise ValueError(f"{name} must be a 1-D sequence of integer positions")
    if length is not None and t.shape[0] != length:
        raise ValueError(f"{name} must hold {length} positions, got {t.shape[0]}")
    return t.to(torch.int64).cpu()


def _pilots(pilots: object, y: torch.Tensor) -> torch.Tensor:
    """Pilots as a complex [P] or [B, P] tensor matching `y` [B, P]; no zero entries."""
    p, _ = to_torch(pilots, "pilots")
    if not p.is_complex():
        raise ValueError(f"pilots must be complex, got {p.dtype}")
    if p.shape not in (y.shape[1:], y.shape):
        raise ValueError(f"pilots must have shape {tuple(y.shape[1:])} or {tuple(y.shape)}")
    if (p.abs() == 0).any():
        raise ValueError("pilots must not contain zeros")
    return p.to(device=y.device, dtype=y.dtype)


def ls_estimate(
    y_pilots: torch.Tensor | np.ndarray, pilots: torch.Tensor | np.ndarray, block: bool = False
) -> torch.Tensor | np.ndarray:
    """Least-squares channel estimate from received pilots y_p = h·p + n.

    Args:
        y_pilots: complex [B, P] received pilot symbols.
        pilots: complex [P] (or [B, P]) transmitted pilots, non-zero.
        block: False → one estimate per pilot, y_p / p, shape [B, P]; True → one estimate per
            image (block fading), Σ p*·y_p / Σ|p|², shape [B, 1], error variance N0 / Σ|p|².

    Returns:
        complex, same dtype and kind (numpy/torch) as `y_pilots`.
    """
    y, was_np = to_torch(y_pilots, "y_pilots")
    check_symbols(y, "y_pilots")
    p = _pilots(pilots, y)
    if not block:
        return from_torch(y / p, was_np)
    energy = (p.real.square() + p.imag.square()).expand_as(y).sum(dim=1, keepdim=True)
    return from_torch((p.conj() * y).sum(dim=1, keepdim=True) / energy, was_np)


def interpolation_weights(pilot_idx: IndexLike, target_idx: IndexLike) -> torch.Tensor:
    """Linear-interpolation matrix W, float64 [T, P]: h_target = W @ h_pilots.

    Positions outside the pilot span take the nearest pilot's value; one pilot gives W = 1.
    """
    pi = _indices(pilot_idx, "pilot_idx").double()
    ti = _indices(target_idx, "target_idx").double()
    if pi.numel() == 0:
        raise ValueError("pilot_idx must hold at least one position")
    if pi.numel() > 1 and not (pi[1:] > pi[:-1]).all():
        raise ValueError("pilot_idx must be strictly increasing")
    if pi.numel() == 1:
        return torch.ones(ti.numel(), 1, dtype=torch.float64)
    right = torch.searchsorted(pi, ti).clamp(1, pi.numel() - 1)
    left = right - 1
    frac = ((ti - pi[left]) / (pi[right] - pi[left])).clamp(0.0, 1.0)
    w = torch.zeros(ti.numel(), pi.numel(), dtype=torch.float64)
    rows = torch.arange(ti.numel())
    w[rows, left] = 1.0 - frac
    w[rows, right] += frac
    return w


def linear_interpolate(
    h_pilots: torch.Tensor | np.ndarray, pilot_idx: IndexLike, target_idx: IndexLike
) -> torch.Tensor | np.ndarray:
    """Interpolate per-pilot estimates complex [B, P] onto `target_idx`: complex [B, T]."""
    h, was_np = to_torch(h_pilots, "h_pilots")
    check_symbols(h, "h_pilots")
    w = interpolation_weights(_indices(pilot_idx, "pilot_idx", h.shape[1]), target_idx)
    return from_torch(h @ w.to(device=h.device, dtype=h.dtype).T, was_np)


def jakes_correlation(lag: torch.Tensor, fd_ts: torch.Tensor) -> torch.Tensor:
    """Normalised autocorrelation J0(2π·fd_ts·lag) of Clarke/Jakes fading (broadcasting)."""
    return torch.special.bessel_j0(2 * math.pi * fd_ts * lag)


def lmmse_estimate(
    y_pilots: torch.Tensor | np.ndarray,
    pilots: torch.Tensor | np.ndarray,
    pilot_idx: IndexLike,
    target_idx: IndexLike,
    noise_var: float | np.ndarray | torch.Tensor,
    fd_ts: float | np.ndarray | torch.Tensor = 0.0,
    prior_var: float = 1.0,
) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]:
    """LMMSE (Wiener) estimate of h at `target_idx` from pilots, with a zero-mean prior of variance
    `prior_var` and Jakes time correlation J0(2π·fd_ts·Δ); fd_ts = 0 is block fading, where it
    reduces to Σ(y_p/p) / (P + N0/prior_var) for unit pilots.

    Args:
        y_pilots: complex [B, P] received pilots.
        pilots: complex [P] or [B, P] transmitted pilots.
        pilot_idx, target_idx: int positions [P] and [T] in the frame.
        noise_var: N0, a scalar or [B], >= 0.
        fd_ts: normalised Doppler, a scalar or [B], >= 0.
        prior_var: E|h|², > 0.

    Returns:
        (h_hat complex [B, T] like `y_pilots`, err_var real [B, T] = E|h − h_hat|²), both the same
        kind (numpy/torch) as `y_pilots`.
    """
    y, was_np = to_torch(y_pilots, "y_pilots")
    check_symbols(y, "y_pilots")
    b, num_p = y.shape
    p = _pilots(pilots, y)
    pi = _indices(pilot_idx, "pilot_idx", num_p).to(y.device).double()
    ti = _indices(target_idx, "target_idx").to(y.device).double()
    f64 = dict(device=y.device, dtype=torch.float64)
    n0 = per_sample(noise_var, b, "noise_var", minimum=0.0, **f64)
    fd = per_sample(fd_ts, b, "fd_ts", minimum=0.0, **f64)
    prior = check_scalar(prior_var, "prior_var", minimum=0.0, strict=True)

    z = y / p  # LS at the pilots, noise variance N0/|p|²
    ls_var = n0.unsqueeze(1) / (p.real.square() + p.imag.square()).double().expand(b, num_p)
    fd3 = fd.view(b, 1, 1)
    r_pp = prior * jakes_correlation(pi.unsqueeze(1) - pi.unsqueeze(0), fd3)  # [B, P, P]
    r_tp = prior * jakes_correlation(ti.unsqueeze(1) - pi.unsqueeze(0), fd3)  # [B, T, P]
    jitter = 1e-10 * prior  # keeps the noiseless block-fading system (rank 1) solvable
    a = r_pp + torch.diag_embed(ls_var + jitter)
    w_t = torch.linalg.solve(a, r_tp.transpose(1, 2))  # [B, P, T] = (R_tp A^{-1})^T
    h_hat = torch.einsum("bpt,bp->bt", w_t.to(y.dtype), z)
    err_var = (prior - (w_t.transpose(1, 2) * r_tp).sum(dim=-1)).clamp_min(0.0)
    return from_torch(h_hat, was_np), from_torch(err_var.to(real_dtype(y.dtype)), was_np)
