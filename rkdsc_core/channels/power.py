"""Per-image power normalisation to unit average symbol power (DESIGN.md §3)."""

from __future__ import annotations

import torch

from rkdsc_core.channels._checks import check_symbols


def _check_mask(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.shape != x.shape:
        raise ValueError(f"mask must be a tensor of shape {tuple(x.shape)} (that of x)")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    return mask


def average_power(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |x|² of each image over its (unmasked) symbols.

    Args:
        x: complex64/complex128 [B, K] symbols.
        mask: optional bool [B, K]; True marks the symbols that are transmitted.

    Returns:
        Real tensor [B] (float32 for complex64), differentiable in `x`; 0 for an all-masked row.
    """
    check_symbols(x)
    mask = _check_mask(mask, x)
    energy = x.real.square() + x.imag.square()
    if mask is None:
        return energy.mean(dim=1)
    count = mask.sum(dim=1).clamp_min(1).to(energy.dtype)
    return (energy * mask).sum(dim=1) / count


def normalize_power(
    x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-12
) -> torch.Tensor:
    """Scale each image to unit average symbol power: x / sqrt(mean|x|²) per row.

    Args:
        x: complex64/complex128 [B, K] symbols.
        mask: optional bool [B, K]; the power is averaged over the True entries only (for a
            variable-length code whose tail is not sent), and masked entries are set to 0.
        eps: guards an all-zero row (it stays zero instead of becoming NaN).

    Returns:
        Same dtype and shape as `x`, differentiable in `x`.
    """
    power = average_power(x, mask)
    y = x * torch.rsqrt(power + eps).unsqueeze(1)
    return y if mask is None else y * mask
