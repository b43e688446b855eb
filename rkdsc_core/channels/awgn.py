"""Additive white Gaussian noise at a per-call SNR (Es/N0 per complex symbol, DESIGN.md §3)."""

from __future__ import annotations

import torch
from torch import nn

from rkdsc_core.channels._checks import check_symbols, device_of, per_sample, real_dtype
from rkdsc_core.channels.snr import noise_variance


def complex_normal(
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """CN(0, 1) samples: total variance 1, 1/2 per rail.

    Drawn on the generator's device (so a CPU generator can drive CUDA tensors), then moved to
    `device`. Returns a `dtype` tensor of `shape`.
    """
    z = torch.randn(shape, generator=generator, device=device_of(generator, device), dtype=dtype)
    return z.to(device)


def add_noise(
    y: torch.Tensor,
    noise_var: torch.Tensor,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """y + n with n ~ CN(0, noise_var) per row.

    Args:
        y: complex [B, N].
        noise_var: real [B] total complex variance per sample (0 → noiseless).
        generator: draws the unit noise, unless `noise` is given.
        noise: complex [B, N] CN(0, 1) values drawn elsewhere (`channels.draws`), or None.

    Returns:
        complex [B, N], same dtype as `y`, differentiable in `y`.
    """
    if noise is None:
        noise = complex_normal(tuple(y.shape), generator=generator, device=y.device, dtype=y.dtype)
    elif noise.shape != y.shape:
        raise ValueError(f"noise must have shape {tuple(y.shape)}, got {tuple(noise.shape)}")
    else:
        noise = noise.to(device=y.device, dtype=y.dtype)
    return y + noise * torch.sqrt(noise_var).to(real_dtype(y.dtype)).unsqueeze(1)


class AWGN(nn.Module):
    """y = x + n, n ~ CN(0, N0) with N0 = noise_variance(snr_db) (unit-power input assumed).

    The noise level is given per call, as one SNR for the batch or one per sample.
    """

    def forward(
        self,
        x: torch.Tensor,
        snr_db: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Add noise to `x`.

        Args:
            x: complex64/complex128 [B, K] symbols at unit average power per image.
            snr_db: Es/N0 in dB: a float, a 0-d tensor or a [B] tensor; +inf means noiseless.
            generator: optional torch.Generator for the noise.

        Returns:
            complex [B, K], same dtype as `x`, differentiable in `x`.
        """
        check_symbols(x)
        snr = per_sample(snr_db, x.shape[0], "snr_db", device=x.device, allow_pos_inf=True)
        return add_noise(x, noise_variance(snr.double()), generator)
