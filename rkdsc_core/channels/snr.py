"""The one SNR convention module (DESIGN.md §3): SNR is Es/N0 per complex symbol, in dB.

Every dB ↔ linear conversion in the project goes through here. Functions take a Python float, a
numpy array or a torch tensor and return the same kind.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

Number = TypeVar("Number", float, np.ndarray, torch.Tensor)
PowerLike = float | np.ndarray | torch.Tensor

#: Largest |SNR| in dB accepted from a user or a PDU: beyond any real link, and 10^(±SNR/10)
#: stays a finite float32. +inf (a noiseless link) is accepted as well.
SNR_LIMIT_DB = 300.0

#: Powers below this are treated as this when converted to dB (−300 dB instead of −inf).
POWER_FLOOR = 1e-30


def _check_db(value: float | np.ndarray | torch.Tensor, name: str) -> None:
    """Reject NaN and −inf dB (an infinite noise level); +inf dB (noiseless) is allowed."""
    if isinstance(value, torch.Tensor):
        bad = torch.isnan(value).any() or torch.isneginf(value).any()
    else:
        arr = np.asarray(value, dtype=np.float64)
        bad = bool(np.isnan(arr).any() or np.isneginf(arr).any())
    if bad:
        raise ValueError(f"{name} must be a number of dB or +inf (noiseless), got NaN or -inf")


def _check_power(value: float | np.ndarray | torch.Tensor, name: str) -> None:
    """A signal power must be finite and > 0."""
    if isinstance(value, torch.Tensor):
        ok = bool(torch.isfinite(value).all() and (value > 0).all())
    else:
        arr = np.asarray(value, dtype=np.float64)
        ok = bool(np.isfinite(arr).all() and (arr > 0).all())
    if not ok:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def db_to_linear(value_db: Number) -> Number:
    """10^(value_db/10). Same kind as the input (float, ndarray or tensor); NaN raises."""
    _check_db(value_db, "value_db")
    if isinstance(value_db, torch.Tensor):
        value = value_db if value_db.is_floating_point() else value_db.to(torch.get_default_dtype())
        return torch.pow(10.0, value / 10.0)
    if isinstance(value_db, np.ndarray):
        return np.power(10.0, value_db.astype(np.float64) / 10.0)
    return 10.0 ** (float(value_db) / 10.0)


def linear_to_db(value: Number) -> Number:
    """10·log10(value), with value floored at `POWER_FLOOR` so that 0 maps to −300 dB, not −inf.

    Same kind as the input; +inf maps to +inf; NaN or a negative value raises.
    """
    if isinstance(value, torch.Tensor):
        if torch.isnan(value).any() or (value < 0).any():
            raise ValueError("value must be >= 0 to convert to dB")
        return 10.0 * torch.log10(value.clamp_min(POWER_FLOOR))
    arr = np.asarray(value, dtype=np.float64 if not isinstance(value, np.ndarray) else None)
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError("value must be >= 0 to convert to dB")
    out = 10.0 * np.log10(np.maximum(arr, POWER_FLOOR))
    return out if isinstance(value, np.ndarray) else float(out)


def noise_variance(snr_db: Number, signal_power: PowerLike = 1.0) -> Number:
    """Total complex noise variance N0 = P · 10^(−snr_db/10) (half of it per rail).

    Args:
        snr_db: Es/N0 per complex symbol in dB; float, ndarray or tensor of any shape. +inf gives 0.
        signal_power: average power P of the symbols the noise is added to (1.0 after
            `normalize_power`); broadcasts against `snr_db`.

    Returns:
        N0, same kind and (broadcast) shape as `snr_db`; float64 for Python/numpy input, the
        tensor's floating dtype for torch input.
    """
    _check_db(snr_db, "snr_db")
    _check_power(signal_power, "signal_power")
    if isinstance(snr_db, torch.Tensor):
        snr = snr_db if snr_db.is_floating_point() else snr_db.to(torch.get_default_dtype())
        return signal_power * torch.pow(10.0, -snr / 10.0)
    if isinstance(snr_db, np.ndarray):
        return np.asarray(signal_power) * np.power(10.0, -snr_db.astype(np.float64) / 10.0)
    return float(signal_power) * 10.0 ** (-float(snr_db) / 10.0)


def noise_voltage(snr_db: Number, signal_power: PowerLike = 1.0) -> Number:
    """sqrt(P · N0): the `noise_voltage` argument of GNU Radio's `channels.channel_model`.

    That block adds complex noise of total power exactly `noise_voltage**2` (GNURADIO.md), so with
    unit-power samples in, `noise_voltage(s)` gives Es/N0 = s dB — the same "s dB" as `AWGN`.

    Args:
        snr_db: Es/N0 in dB (float, ndarray or tensor).
        signal_power: average power P of the samples entering the block.

    Returns:
        The noise standard deviation (complex total), same kind as `snr_db`.
    """
    n0 = noise_variance(snr_db, signal_power)
    if isinstance(n0, torch.Tensor):
        return torch.sqrt(n0)
    if isinstance(n0, np.ndarray):
        return np.sqrt(n0)
    return math.sqrt(n0)


def measure_snr_db(clean: np.ndarray | torch.Tensor, received: np.ndarray | torch.Tensor) -> float:
    """Measured Es/N0 in dB of `received = clean + noise`: mean|clean|² / mean|received − clean|².

    Both arrays (numpy or torch, any equal shape, complex); the means run over all elements.
    """
    if isinstance(clean, torch.Tensor):
        clean = clean.detach().cpu().numpy()
    if isinstance(received, torch.Tensor):
        received = received.detach().cpu().numpy()
    clean = np.asarray(clean)
    received = np.asarray(received)
    if clean.shape != received.shape:
        raise ValueError(
            f"received must have the shape of clean {clean.shape}, got {received.shape}"
        )
    signal = np.mean(np.abs(clean.astype(np.complex128)) ** 2)
    noise = np.mean(np.abs(received.astype(np.complex128) - clean) ** 2)
    return linear_to_db(float(signal / noise)) if noise > 0 else math.inf
