"""Argument checks and numpy↔torch adapters shared by the channel modules (private)."""

from __future__ import annotations

import math

import numpy as np
import torch

COMPLEX_DTYPES = (torch.complex64, torch.complex128)
_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for complex64, float64 for complex128."""
    return _REAL_OF[dtype]


def check_symbols(x: object, name: str = "x", ndim: int = 2) -> torch.Tensor:
    """`x` must be a complex64/complex128 tensor with `ndim` dimensions (default [B, K])."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in COMPLEX_DTYPES:
        raise ValueError(f"{name} must be complex64 or complex128, got {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions ([B, K]), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x


def per_sample(
    value: float | np.ndarray | torch.Tensor,
    batch_size: int,
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    minimum: float | None = None,
    allow_pos_inf: bool = False,
) -> torch.Tensor:
    """A scalar or one value per sample → a [B] tensor; raises ValueError naming `name`.

    NaN and −inf always raise; +inf only passes with `allow_pos_inf`; values below `minimum` raise.
    """
    if isinstance(value, torch.Tensor):
        t = value.detach().to(device=device, dtype=dtype)
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or one number per sample") from None
    if t.dim() == 0:
        t = t.expand(batch_size)
    elif t.dim() != 1 or t.shape[0] != batch_size:
        raise ValueError(
            f"{name} must be a scalar or have shape [{batch_size}], got {tuple(t.shape)}"
        )
    if torch.isnan(t).any():
        raise ValueError(f"{name} must not be NaN")
    if torch.isneginf(t).any() or (not allow_pos_inf and torch.isposinf(t).any()):
        raise ValueError(f"{name} must be finite{' or +inf' if allow_pos_inf else ''}")
    if minimum is not None and (t < minimum).any():
        raise ValueError(f"{name} must be >= {minimum}, got min {t.min().item()}")
    return t


def check_scalar(
    value: float, name: str, *, minimum: float = -math.inf, strict: bool = False
) -> float:
    """A finite real number >= (or > when `strict`) `minimum`; returns it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {rel} {minimum}, got {value!r}")
    return v


def to_torch(value: object, name: str) -> tuple[torch.Tensor, bool]:
    """(tensor, came_from_numpy): numpy arrays are wrapped without copying, except read-only ones
    (views of PMT buffers, broadcasts), which torch cannot wrap safely: those are copied."""
    if isinstance(value, torch.Tensor):
        return value, False
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        return torch.from_numpy(arr if arr.flags.writeable else arr.copy()), True
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")


def from_torch(value: torch.Tensor, to_numpy: bool) -> torch.Tensor | np.ndarray:
    """Back to numpy when the caller passed numpy."""
    return value.detach().cpu().numpy() if to_numpy else value


def device_of(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """Random numbers are drawn on the generator's device, then moved to `fallback`."""
    return generator.device if generator is not None else fallback


def uniform(
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U[0, 1) samples of `shape` on `device` (drawn on the generator's device)."""
    u = torch.rand(shape, generator=generator, device=device_of(generator, device), dtype=dtype)
    return u.to(device)
