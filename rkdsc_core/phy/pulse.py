"""Root-raised-cosine pulse shaping, matched filtering and the PAPR (clipping) limit, in numpy."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def rrc_taps(sps: int, rolloff: float, span: int) -> np.ndarray:
    """Root-raised-cosine taps, float64 [span·sps + 1], unit energy (Σ h² = 1), symmetric.

    With unit-energy taps at both ends, the cascade TX ∘ RX is a raised cosine whose peak is 1, so a
    symbol of amplitude a reappears as a at the matched-filter output and white noise of variance
    σ² per sample stays σ².
    """
    n = span * sps + 1
    t = (np.arange(n) - (n - 1) / 2) / sps  # in symbols
    b = rolloff
    h = np.empty(n)
    at_zero = np.isclose(t, 0.0)
    at_sing = np.isclose(np.abs(4 * b * t), 1.0)
    reg = ~(at_zero | at_sing)
    tr = t[reg]
    h[reg] = (np.sin(np.pi * tr * (1 - b)) + 4 * b * tr * np.cos(np.pi * tr * (1 + b))) / (
        np.pi * tr * (1 - (4 * b * tr) ** 2)
    )
    h[at_zero] = 1 - b + 4 * b / np.pi
    h[at_sing] = (b / np.sqrt(2)) * (
        (1 + 2 / np.pi) * np.sin(np.pi / (4 * b)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * b))
    )
    h /= np.sqrt(np.sum(h * h))
    h.flags.writeable = False
    return h


def shape(symbols: np.ndarray, taps: np.ndarray, sps: int) -> np.ndarray:
    """Upsample by `sps` and filter: complex128 [N·sps + len(taps) − 1] (the full convolution).

    Symbol k's pulse peaks at sample k·sps + (len(taps) − 1) / 2.
    """
    up = np.zeros(len(symbols) * sps, dtype=np.complex128)
    up[::sps] = symbols
    return np.convolve(up, taps)


def matched_filter(samples: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """The receive filter as GNU Radio's `fir_filter_ccf(1, taps)` computes it: complex64 [n],
    y[m] = Σ_i taps[i]·x[m − i] (the first n samples of the full convolution)."""
    x = np.asarray(samples)
    return np.convolve(x, taps)[: len(x)].astype(np.complex64)


def clip(samples: np.ndarray, level: float = 1.0) -> tuple[np.ndarray, int]:
    """Soft limiter keeping the phase: x·min(1, level/|x|). Returns (clipped, samples clipped)."""
    mag = np.abs(samples)
    over = mag > level
    out = samples.copy()
    out[over] *= level / mag[over]
    return out, int(np.count_nonzero(over))


def normalize_taps(taps: np.ndarray, sps: int, rolloff: float, span: int) -> np.ndarray:
    """Scale sample-spaced multipath `taps` (complex [M]) so that an RRC-shaped signal keeps its
    symbol energy through them: h / sqrt(hᴴ·P·h), P[k, l] = ρ(k − l), ρ the RRC autocorrelation
    (the raised cosine, ρ(0) = 1). Then "SNR" means the received Es/N0, whatever the taps.

    Returns complex128 [M].
    """
    h = np.asarray(taps, dtype=np.complex128)
    g = rrc_taps(sps, rolloff, span)
    rho = np.correlate(g, g, mode="full")  # rho[len(g) − 1 + m] = ρ(m)
    lags = np.arange(len(h))[:, None] - np.arange(len(h))[None, :]
    gain = np.real(h.conj() @ rho[len(g) - 1 + lags] @ h)
    if not gain > 0:
        raise ValueError("multipath taps must not all be zero")
    return h / np.sqrt(gain)
