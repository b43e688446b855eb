"""Synchronisation estimators on matched-filter output: preamble timing metric and coarse CFO,
a T/2-spaced least-squares equaliser trained on known symbols, ML residual-frequency search over
pilots, and a noise estimate from blocks of known symbols. Pure numpy functions.

The per-frame path calls no BLAS/LAPACK routine: numpy's bundled OpenBLAS hands even 7×7 solves
and small products to a worker thread that then spins between frames, taking a whole core from a
2-core radio host. Small products are element-wise sums here and `solve_hpd` eliminates in numpy.
"""

from __future__ import annotations

import numpy as np

from rkdsc_core.phy.preamble import preamble_symbols, repetition_template


def preamble_metric(
    z: np.ndarray, taus: np.ndarray, sps: int, zc_length: int, reps: int, oversample: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Coherent timing metric of the preamble starting at each candidate sample τ of `taus`, and
    the carrier offset that maximises it.

    c_r(τ) is the correlation of repetition r (symbol-spaced samples z[τ + n·sps], signs and
    sequence removed); a CFO δ turns c_r by 2π·δ·L·sps per repetition, so that
    C(τ, f) = Σ_r c_r·e^{−j2πfr} over a grid of `oversample`·R frequencies (an FFT) recovers the
    whole preamble's coherent gain.
    The metric max_f |C|² / (R·L·Σ|z|²) is 1 for a noiseless frame at τ, about SNR / (1 + SNR)
    with noise, about 1 / (R·L) on noise alone, and ≥ 8.5 dB lower one repetition off.

    Args:
        z: complex [n] matched-filter output; needs z[max(taus) + (R·L − 1)·sps].
        taus: int [T] candidate starts.

    Returns:
        (metric float64 [T], cfo float64 [T] in cycles per sample, |cfo| < 1 / (2·L·sps)).
    """
    p = preamble_symbols(zc_length, reps)
    taus = np.asarray(taus, dtype=np.int64)
    g = z[taus[:, None] + sps * np.arange(len(p))[None, :]].astype(np.complex128)  # [T, R·L]
    c = (g * p.conj()).reshape(len(taus), reps, zc_length).sum(axis=2)  # [T, R]
    bins = oversample * reps
    power = np.abs(np.fft.fft(c, bins, axis=1)) ** 2  # [T, bins]
    k = np.argmax(power, axis=1)
    rows = np.arange(len(taus))
    a, b, cc = power[rows, (k - 1) % bins], power[rows, k], power[rows, (k + 1) % bins]
    den = a - 2 * b + cc
    shift = np.where(den < 0, 0.5 * (a - cc) / np.where(den < 0, den, -1.0), 0.0)
    f = ((k + shift) / bins + 0.5) % 1.0 - 0.5  # cycles per repetition
    energy = np.sum(g.real**2 + g.imag**2, axis=1)
    metric = b / (reps * zc_length * np.maximum(energy, 1e-30))
    return metric, f / (zc_length * sps)


def repetition_correlation(z: np.ndarray, zc_length: int, sps: int) -> np.ndarray:
    """corr[n] = Σ_i conj(zc[i])·z[n + i·sps] for every n with the samples present: complex128
    [len(z) − (L − 1)·sps] (what `ota_rx`'s `fft_filter_ccc` computes, without its delay)."""
    taps = repetition_template(zc_length, sps)
    return np.convolve(np.asarray(z, np.complex128), taps, mode="valid")


def prescreen_metric(
    corr: np.ndarray, power_csum: np.ndarray, count: int, sps: int, zc_length: int, reps: int
) -> np.ndarray:
    """Cheap non-coherent detector for candidate starts τ = 0 … count − 1: Σ_r |corr[τ + r·L·sps]|²
    ÷ (L · E(τ)) with E(τ) the preamble window's energy at symbol spacing (estimated from all
    samples: Σ |z|² over R·L·sps samples ÷ sps). About 1/L on noise (relative spread 1/√R),
    about SNR/(1 + SNR) + 1/L on a preamble; every CFO in range passes.

    Args:
        corr: complex [≥ count + (R − 1)·L·sps], `repetition_correlation` from τ = 0.
        power_csum: float [≥ count + R·L·sps + 1], cumulative Σ|z|² starting with 0 at τ = 0.

    Returns:
        float64 [count].
    """
    step = zc_length * sps
    mag = corr.real**2 + corr.imag**2
    s = np.zeros(count)
    for r in range(reps):
        s += mag[r * step : r * step + count]
    span = reps * step
    energy = (power_csum[span : span + count] - power_csum[:count]) / sps
    return s / (zc_length * np.maximum(energy, 1e-30))


def fse_offsets(sps: int, taps: int) -> np.ndarray:
    """Sample offsets of a T/2-spaced equaliser of `taps` (odd) taps, int64 [taps], centred on 0."""
    if taps < 1 or taps % 2 == 0:
        raise ValueError(f"equaliser taps must be odd and >= 1, got {taps}")
    return (np.arange(taps) - (taps - 1) // 2) * (sps // 2)


def fse_rows(
    z: np.ndarray, tau: int, cfo: float, count: int, sps: int, offsets: np.ndarray
) -> np.ndarray:
    """Equaliser input rows for frame symbols 0 … count − 1: row k holds z[tau + k·sps + offsets]
    de-rotated by the coarse CFO (phase 0 at tau), complex128 [count, len(offsets)]."""
    t = (np.arange(count) * sps)[:, None] + offsets[None, :]  # samples from tau
    return z[tau + t] * np.exp(-2j * np.pi * cfo * t)


def grid_peak(grid: np.ndarray, values: np.ndarray) -> float:
    """The argmax of `values` over the evenly spaced `grid`, refined by a parabola through it and
    its neighbours when it is an interior maximum."""
    i = int(np.argmax(values))
    peak = float(grid[i])
    if 0 < i < len(grid) - 1:
        a, b, c = values[i - 1], values[i], values[i + 1]
        den = a - 2 * b + c
        if den < 0:
            peak += 0.5 * float(grid[1] - grid[0]) * (a - c) / den
    return peak


def fse_stream(
    z: np.ndarray,
    tau: int,
    cfo: float,
    w: np.ndarray,
    offsets: np.ndarray,
    first: int,
    last: int,
) -> np.ndarray:
    """The equaliser's output at every sample offset s = first … last from tau (coarse CFO
    removed, phase 0 at tau): complex128 [last − first + 1], out[s − first] = Σ_j w_j·z'[tau + s +
    offsets_j]. Symbol times between samples are then read with `cubic_at` (the FSE is linear, so
    interpolating its output equals equalising interpolated input)."""
    lo, hi = tau + first + int(offsets[0]), tau + last + int(offsets[-1]) + 1
    seg = z[lo:hi] * np.exp(-2j * np.pi * cfo * np.arange(lo - tau, hi - tau))
    count = last - first + 1
    out = np.zeros(count, dtype=np.complex128)
    for wj, off in zip(w, offsets - offsets[0]):
        out += wj * seg[off : off + count]
    return out


def cubic_at(v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """v (complex [n], sampled at integers) at times t (float [M], 1 <= t <= n − 3): cubic
    Catmull–Rom interpolation, exact at integers (the matched-filter output is oversampled 2·sps /
    (1 + roll-off) times, so the interpolation error stays below the noise of interest)."""
    base = np.floor(t)
    mu = t - base
    i = base.astype(np.int64)
    mu2, mu3 = mu * mu, mu * mu * mu
    return (
        (-0.5 * mu3 + mu2 - 0.5 * mu) * v[i - 1]
        + (1.5 * mu3 - 2.5 * mu2 + 1.0) * v[i]
        + (-1.5 * mu3 + 2.0 * mu2 + 0.5 * mu) * v[i + 1]
        + (0.5 * mu3 - 0.5 * mu2) * v[i + 2]
    )


def sco_search(
    v: np.ndarray,
    origin: float,
    known_pos: np.ndarray,
    known_val: np.ndarray,
    sps: int,
    max_sco: float,
    frame_symbols: int,
    block: int = 64,
) -> float:
    """Sample-clock offset ε (relative) of a frame: symbol k sits at k·sps·(1 + ε) samples from
    the preamble's start. Picks, on a coarse grid (1 sample apart at the frame's end) and then a
    fine one (1/8), the ε that maximises Σ_blocks |Σ y·conj(known)|² over the known symbols
    (blocks of `block` symbols, short enough for the residual CFO to stay put within each),
    parabola-refined. 0 when even the largest offset `max_sco` moves the frame's end by less than
    1/4 sample.

    Args:
        v: the equaliser output at every sample (`fse_stream`), v[origin + s] at offset s.
        known_pos: int [M] frame symbol indices of known symbols; known_val complex [M].
    """
    span = frame_symbols * sps
    if max_sco * span < 0.25:
        return 0.0
    _, blk = np.unique(known_pos // block, return_inverse=True)
    nblk = int(blk.max()) + 1
    times = known_pos.astype(np.float64) * sps
    conj = known_val.conj()

    def power(eps: float) -> float:
        u = cubic_at(v, origin + times * (1.0 + eps)) * conj
        re, im = np.bincount(blk, u.real, nblk), np.bincount(blk, u.imag, nblk)
        return float(np.sum(re * re + im * im))

    # coarse (1 sample at the frame's end: the pulse's main lobe spans ±4) then fine (1/8 sample
    # within ±1/2 of the best) grid, parabola-refined
    coarse = 1.0 / span
    grid = np.arange(-np.ceil(max_sco / coarse), np.ceil(max_sco / coarse) + 1) * coarse
    best = float(grid[int(np.argmax([power(e) for e in grid]))])
    step = 0.125 / span
    grid = best + np.arange(-4, 5) * step
    return grid_peak(grid, np.array([power(e) for e in grid]))


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
        rows: complex [N, J] received samples around each known symbol (`fse_rows`).
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
    nu = grid_peak(grid, power)
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
