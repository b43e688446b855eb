"""The preamble: R repetitions of a Zadoff–Chu sequence (root 1), the last repetition negated.

Constant amplitude and an ideal periodic autocorrelation give a sharp timing peak; the phase step
between repetitions gives the CFO; the negated last repetition makes the adjacent-repetition metric
vanish one repetition early or late, so the frame start is unambiguous.
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


def preamble_signs(reps: int) -> np.ndarray:
    """+1 for every repetition but the last, which is −1: float64 [reps]."""
    signs = np.ones(reps)
    signs[-1] = -1.0
    return signs


@lru_cache(maxsize=8)
def preamble_symbols(zc_length: int, reps: int) -> np.ndarray:
    """The preamble, complex128 [reps·zc_length], unit modulus."""
    seq = (preamble_signs(reps)[:, None] * zadoff_chu(zc_length)[None, :]).reshape(-1)
    seq.flags.writeable = False
    return seq


def detection_template(zc_length: int, reps: int, sps: int, use_reps: int = 2) -> np.ndarray:
    """Sparse correlator template for a stream detector (`digital.corr_est_cc` with sps 1):
    the first `use_reps` repetitions at the symbol instants of matched-filter output, zeros between,
    complex64 [(use_reps·L − 1)·sps + 1]. Two repetitions lose < 1 dB of correlation at a CFO of
    1e-3 cycles/sample where the whole preamble would lose 4 dB; the price is a second, equal
    peak one repetition later, which `FrameReceiver.candidates` covers.
    """
    if not 1 <= use_reps <= reps:
        raise ValueError(f"use_reps must be in 1..{reps}, got {use_reps}")
    sym = preamble_symbols(zc_length, reps)[: use_reps * zc_length]
    out = np.zeros((len(sym) - 1) * sps + 1, dtype=np.complex64)
    out[::sps] = sym
    return out
