"""The preamble: R repetitions of a Zadoff–Chu sequence (root 1), each multiplied by a sign.

Constant amplitude and an ideal periodic autocorrelation give a sharp timing peak within a
repetition. The receiver correlates each repetition on its own (a carrier offset turns the phase by
2π·CFO·L·sps from one to the next, so a single long correlation would lose its coherent gain) and
combines the R correlations coherently over a bank of frequencies (an FFT over repetitions): the
whole preamble's gain, at any CFO in ±1 / (2·L·sps). The signs are a sequence whose shifted copies
stay ≥ 8.5 dB below the peak at every frequency, so the start is unambiguous to a repetition.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def zadoff_chu(length: int, root: int = 1) -> np.ndarray:
    """Zadoff–Chu sequence, complex128 [length]: e^{−jπ·u·n(n + c)/L}, c = L mod 2.

    Root 1 keeps the timing shift caused by a frequency offset small (δ·L symbols for δ cycles per
    symbol), which matters more here than the low cross-correlation other roots offer.
    """
    if np.gcd(root, length) != 1:
        raise ValueError(f"Zadoff-Chu root {root} must be coprime with the length {length}")
    n = np.arange(length, dtype=np.float64)
    seq = np.exp(-1j * np.pi * root * n * (n + length % 2) / length)
    seq.flags.writeable = False
    return seq


#: For R = 16: the ±1 sequence (first +1) whose worst shifted-overlap spectrum peak is lowest
#: (5.97 of 16 on a fine frequency grid, found by exhaustive search over 2^15 sequences;
#: tests/core/test_phy_frame.py checks the bound).
SIGNS_16 = (1, -1, 1, 1, -1, 1, -1, -1, -1, -1, -1, 1, 1, -1, -1, -1)


def preamble_signs(reps: int) -> np.ndarray:
    """The repetition signs, float64 [reps]: `SIGNS_16` for 16, else +1 with the last −1."""
    if reps == len(SIGNS_16):
        return np.array(SIGNS_16, dtype=np.float64)
    signs = np.ones(reps)
    signs[-1] = -1.0
    return signs


@lru_cache(maxsize=8)
def preamble_symbols(zc_length: int, reps: int) -> np.ndarray:
    """The preamble, complex128 [reps·zc_length], unit modulus."""
    seq = (preamble_signs(reps)[:, None] * zadoff_chu(zc_length)[None, :]).reshape(-1)
    seq.flags.writeable = False
    return seq


def repetition_template(zc_length: int, sps: int) -> np.ndarray:
    """Taps of a stream correlator with one repetition at the symbol instants of matched-filter
    output, for GNU Radio's `filter.fft_filter_ccc`: complex64 [(L − 1)·sps + 1], time-reversed
    and conjugated so that output sample n + (L − 1)·sps is Σ_i conj(zc[i])·z[n + i·sps]."""
    seq = zadoff_chu(zc_length)
    out = np.zeros((zc_length - 1) * sps + 1, dtype=np.complex64)
    out[::sps] = seq.conj()
    return out[::-1].copy()
