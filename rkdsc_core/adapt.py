"""Rate that follows the channel (issue 18), over the nested CAT code: the increment schedule of
semantic incremental redundancy (IR), the power of each increment, the receiver's stopping rule
and the channel draws of each increment (keyed, so fixed-rate and IR runs meet the same channel).
Numpy in and out; the runtime, the offline evaluation and the GNU Radio blocks call it.

IR sends the K_max code of an image in increments: symbols [0, k0), then [k0, k1), … (the
schedule). Each increment goes out at unit average power (DESIGN.md §3: every transmission is
normalised), with one real gain of side information (the RMS of its raw encoder outputs). From the
gains the receiver rebuilds exactly the K = k code the decoder was trained on (the first k raw
outputs normalised together) and each symbol's effective SNR after the rescaling, then decodes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rkdsc_core.channels.snr import linear_to_db

ADAPT_MODES = ("none", "snr", "ir")


def ir_schedule(k0: int, k_max: int, step: int | None = None) -> tuple[int, ...]:
    """Cumulative symbols after each increment, ending at k_max: by default k0 times 1, 2, 3, 4,
    6, 8, 12, 16, … (each total at most 2x and at least 4/3x the last: a few round trips, and
    fine steps where most images stop); with `step`, k0, k0 + step, k0 + 2·step, …
    ValueError for k0 outside 1..k_max or step < 1."""
    k0, k_max = int(k0), int(k_max)
    if not 1 <= k0 <= k_max:
        raise ValueError(f"k0={k0} must lie in 1..K_max={k_max}")
    if step is not None and int(step) < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    out = [k0]
    while out[-1] < k_max:
        if step is not None:
            nxt = out[-1] + int(step)
        else:
            m = out[-1] // k0  # 1, 2, 3, 4, 6, 8, 12, … : 2^a or 3·2^a
            nxt = k0 * (m + 1 if m < 2 else m * 3 // 2 if m & (m - 1) == 0 else m * 4 // 3)
        out.append(min(nxt, k_max))
    return tuple(out)


def increment_bounds(schedule: tuple[int, ...]) -> list[tuple[int, int]]:
    """[(start, stop)] of each increment of a schedule."""
    return list(zip((0,) + tuple(schedule[:-1]), schedule))


def split_increments(raw: np.ndarray, schedule) -> tuple[list[np.ndarray], np.ndarray]:
    """The increments of IR as transmitted.

    Args:
        raw: complex [B, K_max] unnormalised encoder outputs (`Transmitter.encode_raw`).
        schedule: cumulative symbol counts (`ir_schedule`).

    Returns:
        (blocks, gains): blocks[j] complex64 [B, n_j] at unit average power per image; gains
        float32 [B, J], the RMS of each raw block divided by that of the first (gains[:, 0] = 1).
    """
    raw = np.asarray(raw)
    blocks, rms = [], []
    for a, b in increment_bounds(tuple(schedule)):
        r = np.sqrt(np.mean(np.abs(raw[:, a:b]) ** 2, axis=1)).clip(1e-12)
        blocks.append((raw[:, a:b] / r[:, None]).astype(np.complex64))
        rms.append(r)
    rms = np.stack(rms, 1)
    return blocks, (rms / rms[:, :1]).astype(np.float32)


def assemble_prefix(
    blocks: list[np.ndarray], snr_eff_db: list[np.ndarray], gains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Received increments of a batch → the K = k code the decoder expects.

    Args:
        blocks: equalised increments, complex [B, n_j] each (j = 0 .. J-1, in order).
        snr_eff_db: the effective SNR (dB) of each, float [B, n_j] or [B].
        gains: float [B, >= J], the increments' gains (`split_increments`).

    Returns:
        (symbols complex64 [B, k], snr_db float32 [B, k]) with k = Σ n_j: increment j rescaled by
        g_j / s_k, s_k² = Σ n_j g_j² / k (the raw prefix's mean power in units of block 0's), and
        its SNR lowered by 20·log10(g_j / s_k).
    """
    g = np.asarray(gains, np.float64)[:, : len(blocks)]
    n = np.array([blk.shape[1] for blk in blocks], np.float64)
    s = np.sqrt((g**2 * n).sum(1) / n.sum())
    xs, snrs = [], []
    for j, (blk, snr) in enumerate(zip(blocks, snr_eff_db)):
        scale = g[:, j] / s
        xs.append(blk * scale[:, None])
        snr = np.broadcast_to(np.asarray(snr, np.float64).reshape(len(blk), -1), blk.shape)
        snrs.append(snr - linear_to_db(scale**2)[:, None])
    return (
        np.concatenate(xs, 1).astype(np.complex64),
        np.concatenate(snrs, 1).astype(np.float32),
    )


def keyed_channel(
    x: np.ndarray, index, offset: int, channel: str, snr_db: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Symbols [offset, offset + n) of images `index` int [B], `x` complex [B, n] at unit power,
    through `channel` at `snr_db` with the evaluation's keyed draws (`rkdsc_core.channels.draws`:
    symbol s of image i meets the same gain and noise whether or not, and whatever, was sent
    before it): (y complex64 [B, n] unequalised, h complex64 [B, n] the perfect CSI)."""
    import torch

    from rkdsc_core.channels import apply_keyed, make_channel

    x = np.asarray(x, np.complex64)
    full = np.concatenate([np.zeros((len(x), offset), np.complex64), x], 1)
    out = apply_keyed(make_channel(channel), torch.from_numpy(full), float(snr_db), index, seed)
    return out.y[:, offset:].numpy().astype(np.complex64), out.h[:, offset:].numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """float [B, C] logits → probabilities [B, C]."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def margin(logits: np.ndarray) -> np.ndarray:
    """The stopping score: top-1 minus top-2 softmax probability, float [B] in [0, 1]."""
    p = np.sort(softmax(logits), 1)
    return p[:, -1] - p[:, -2]


@dataclass(frozen=True)
class StopRule:
    """When the IR receiver stops asking: after k symbols it stops if the expected accuracy gain
    of going on to K_max, `gain`, is at most 1 − `confidence` (e.g. 0.01 for confidence 0.99).

    `gain` = P(the decision at K_max is right) − P(the decision at k is right), a table over
    (k, mean effective SNR bin, softmax-margin bin) measured on validation images and made
    non-increasing in the margin. Two lessons of the first look (issue 18) shape it: label
    smoothing keeps max-softmax below ~0.95 even for safe decisions, so no raw threshold on it
    serves; and an image that is ambiguous to the classifier (shirt or T-shirt) stays ambiguous
    with any number of symbols, so the rule asks whether more symbols would help, not whether
    the decision is sure: such images stop early instead of always running to K_max.
    """

    ks: tuple[int, ...]
    snr_edges: tuple[float, ...]  # inner bin edges, dB of the mean effective SNR
    score_edges: tuple[float, ...]  # inner bin edges of the margin
    gain: np.ndarray  # float [len(ks), len(snr_edges) + 1, len(score_edges) + 1]
    k_max: int

    def expected_gain(self, k: int, logits: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
        """Expected accuracy gain of K_max over k per image, float [B]; `snr_db` float [B] is
        the mean effective SNR of the k received symbols. k between rows uses the row below."""
        i = max(0, int(np.searchsorted(self.ks, int(k), side="right")) - 1)
        si = np.searchsorted(self.snr_edges, np.asarray(snr_db, np.float64), side="right")
        ci = np.searchsorted(self.score_edges, margin(logits), side="right")
        return self.gain[i, si, ci]

    def stop(self, k: int, logits: np.ndarray, snr_db, confidence: float) -> np.ndarray:
        """bool [B]: stop asking after k symbols (always at k >= K_max)."""
        if int(k) >= self.k_max:
            return np.ones(len(logits), bool)
        snr = np.broadcast_to(np.asarray(snr_db, np.float64), (len(logits),))
        return self.expected_gain(k, logits, snr) <= 1.0 - float(confidence) + 1e-12

    def to_dict(self) -> dict:
        return {
            "ks": [int(k) for k in self.ks],
            "snr_edges_db": [float(e) for e in self.snr_edges],
            "margin_edges": [float(e) for e in self.score_edges],
            "gain": np.round(self.gain, 4).tolist(),
            "k_max": int(self.k_max),
        }

    @classmethod
    def from_dict(cls, d: dict) -> StopRule:
        gain = np.asarray(d["gain"], np.float64)
        ks, se, ce = tuple(d["ks"]), tuple(d["snr_edges_db"]), tuple(d["margin_edges"])
        if gain.shape != (len(ks), len(se) + 1, len(ce) + 1):
            raise ValueError(f"stop rule table has shape {gain.shape}, expected by its edges")
        return cls(ks, se, ce, gain, int(d["k_max"]))


def fit_stop_rule(
    k: np.ndarray,
    logits: np.ndarray,
    snr_db: np.ndarray,
    gains: np.ndarray,
    ks: tuple[int, ...],
    k_max: int,
    snr_edges: tuple[float, ...] = tuple(np.arange(-12.5, 25.0, 2.5)),
    score_edges: tuple[float, ...] = tuple(np.round(np.linspace(0.05, 0.95, 19), 3)),
    prior: float = 2.0,
    prior_gain: float = 0.1,
) -> StopRule:
    """The table of `StopRule` from validation samples.

    Args:
        k: int [N] symbols each sample was decoded from; logits float [N, C]; snr_db float [N]
            (mean effective SNR); gains float [N]: correct at K_max minus correct at k (−1, 0, 1).
        ks: the k of the table's rows (every value in `k` should be one of them).
        prior, prior_gain: `prior` pseudo-samples of gain `prior_gain` per cell, so that a cell
            with few samples does not stop early.
    """
    shape = (len(ks), len(snr_edges) + 1, len(score_edges) + 1)
    sums, counts = np.zeros(shape), np.zeros(shape)
    row = np.searchsorted(ks, k)
    si = np.searchsorted(snr_edges, snr_db, side="right")
    ci = np.searchsorted(score_edges, margin(logits), side="right")
    np.add.at(sums, (row, si, ci), np.asarray(gains, np.float64))
    np.add.at(counts, (row, si, ci), 1.0)
    g = (sums + prior * prior_gain) / (counts + prior)
    for i in np.ndindex(shape[:2]):
        g[i] = -_isotonic(-g[i], counts[i], empty=-prior_gain)
    return StopRule(tuple(ks), tuple(snr_edges), tuple(score_edges), g, int(k_max))


def _isotonic(values: np.ndarray, weights: np.ndarray, empty: float = 0.5) -> np.ndarray:
    """Weighted non-decreasing fit (pool adjacent violators); cells of weight 0 take the fit of
    the nearest cell below them (`empty` when there is none)."""
    pools: list[list[float]] = []  # [value, weight, cells]
    for v, w in zip(values, weights):
        if w <= 0:
            pools.append([np.nan, 0.0, 1])
            continue
        pools.append([float(v), float(w), 1])
        while len(pools) > 1:
            prev = next((q for q in reversed(pools[:-1]) if q[1] > 0), None)
            if prev is None or prev[0] <= pools[-1][0]:
                break
            cur = pools.pop()
            while pools[-1] is not prev:  # empty cells between merge into the pool
                prev[2] += pools.pop()[2]
            prev[0] = (prev[0] * prev[1] + cur[0] * cur[1]) / (prev[1] + cur[1])
            prev[1] += cur[1]
            prev[2] += cur[2]
    out, last = [], empty
    for v, _, cells in pools:
        last = last if np.isnan(v) else v
        out.extend([last] * cells)
    return np.asarray(out)
