"""Synchronisation estimators on matched-filter output: preamble timing metric and coarse CFO,
a T/2-spaced least-squares equaliser trained on known symbols, ML residual-frequency search over
pilots, and a noise estimate from blocks of known symbols. Pure numpy functions.

The per-frame path calls no BLAS/LAPACK routine: numpy's bundled OpenBLAS hands even 7×7 solves
and small products to a worker thread that then spins between frames, taking a whole core from a
2-core radio host. Small products are element-wise sums here and `solve_hpd` eliminates in numpy.
"""

from __future__ import annotations

import numpy as np

from rkdsc_core.phy.preamble import preamble_symbols


def preamble_metric(
    z: np.ndarray, taus: np.ndarray, sps: int, zc_length: int, reps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Timing metric of the repeated preamble starting at each candidate sample τ of `taus`.

    With c_r(τ) the correlation of repetition r (symbol-spaced samples z[τ + n·sps]) and
    D(τ) = Σ_r c_{r+1}·c_r*, the metric R·|D| / ((R−1)·L·Σ|z|²) is 1 for a noiseless frame starting
    at τ, about SNR / (1 + SNR) with noise, and near 0 one repetition early or late (the last
    repetition is negated). arg D(τ) = 2π·CFO·L·sps.

    Args:
        z: complex [n] matched-filter output; needs z[max(taus) + (R·L − 1)·sps].
        taus: int [T] candidate starts.

    Returns:
        (metric float64 [T], D complex128 [T]).
    """
    p = preamble_symbols(zc_length, reps)
    taus = np.asarray(taus, dtype=np.int64)
    g = z[taus[:, None] + sps * np.arange(len(p))[None, :]].astype(np.complex128)  # [T, R·L]
    c = (g * p.conj()).reshape(len(taus), reps, zc_length).sum(axis=2)  # [T, R]
    d = np.sum(c[:, 1:] * c[:, :-1].conj(), axis=1)
    energy = np.sum(g.real**2 + g.imag**2, axis=1)
    metric = reps * np.abs(d) / ((reps - 1) * zc_length * np.maximum(energy, 1e-30))
    return metric, d


def fse_offsets(sps: int, taps: int) -> np.ndarray:
    """Sample offsets of a T/2-spaced equaliser of `taps` (odd) taps, int64 [taps], centred on 0."""
    if taps < 1 or taps % 2 == 0:
        raise ValueError(f"equaliser taps must be odd and >= 1, got {taps}")
    return (np.arange(taps) - (taps - 1) // 2) * (sps // 2)


def fse_matrix(z: np.ndarray, starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rows z[start + offsets] for each start: complex128 [len(starts), len(offsets)]."""
    return z[starts[:, None] + offsets[None, :]].astype(np.complex128)


def solve_hpd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a·x = b for a small Hermitian positive-definite a (complex [J, J], b [J]):
    Gauss–Jordan elimination without pivoting (stable for HPD), J numpy steps, no LAPACK."""
    n = len(a)
    m = np.concatenate([a, b[:, None]], axis=1).astype(np.complex128)
    for k in range(n):
        m[k] /= m[k, k]
        col = m[:, k].copy()
        col[k] = 0.0
        m -= col[:, None] * m[k][None, :]
    return m[:, n]


def train_fse(rows: np.ndarray, known: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, float]:
    """Ridge least-squares equaliser w minimising |rows·w − known|² + λ|w|².

    λ = ridge · trace(rows^H rows) / taps keeps the solve stable on band-limited (oversampled)
    input, whose correlation matrix is nearly singular.

    Args:
        rows: complex [N, J] received samples around each known symbol (`fse_matrix`).
        known: complex [N] the symbols sent.

    Returns:
        (w complex128 [J], residual variance per symbol with J degrees of freedom removed).
    """
    n, j = rows.shape
    gram = np.einsum("ni,nj->ij", rows.conj(), rows)
    lam = ridge * np.real(np.trace(gram)) / j
    w = solve_hpd(gram + lam * np.eye(j), np.einsum("ni,n->i", rows.conj(), known))
    resid = np.sum(rows * w, axis=1) - known
    return w, float(np.sum(resid.real**2 + resid.imag**2) / max(n - j, 1))


def residual_frequency(
    values: np.ndarray,
    positions: np.ndarray,
    max_freq: float,
    oversample: int = 4,
    centre: float = 0.0,
) -> tuple[float, complex]:
    """Joint ML frequency and phase of a ramp through complex `values` [P] at symbol `positions`
    [P]: ν = argmax over [centre − max_freq, centre + max_freq] of |S(ν)|²,
    S(ν) = Σ values·e^{−j2πν·pos}, on a grid (`oversample` points per 1/span) refined by a
    parabola.

    Returns:
        (ν in cycles per symbol, S(ν) with phase referred to position 0).
    """
    pos = np.asarray(positions, dtype=np.float64)
    rel = pos - pos.mean()
    span = max(float(np.ptp(rel)), 1.0)
    step = 1.0 / (oversample * span)
    grid = centre + np.arange(-max_freq, max_freq + step / 2, step)
    power = np.abs(np.sum(np.exp(-2j * np.pi * grid[:, None] * rel[None, :]) * values, axis=1)) ** 2
    i = int(np.argmax(power))
    nu = float(grid[i])
    if 0 < i < len(grid) - 1:
        a, b, c = power[i - 1], power[i], power[i + 1]
        den = a - 2 * b + c
        if den < 0:
            nu += 0.5 * step * (a - c) / den
    return nu, complex(np.sum(values * np.exp(-2j * np.pi * nu * pos)))


def block_noise(products: np.ndarray, starts: np.ndarray) -> float:
    """Noise variance from y·s* products of known unit-modulus symbols, assuming the channel is
    constant within each block: Σ|u − mean_block(u)|² / Σ(n_block − 1).

    Args:
        products: complex [N], u_k = y_k·conj(s_k).
        starts: int [B], first index of each block (sorted, starting at 0).
    """
    counts = np.diff(np.append(starts, len(products)))
    means = np.add.reduceat(products, starts) / counts
    resid = products - np.repeat(means, counts)
    dof = int(np.sum(counts - 1))
    if dof <= 0:
        raise ValueError("blocks of known symbols need at least two symbols each")
    return float(np.sum(resid.real**2 + resid.imag**2) / dof)
