"""The modem of the digital baselines: Gray M-QAM, max-log LLR demapping, and one coded frame per
image through the keyed channel draws. Pure numpy / torch; the channel code itself comes in as a
`BlockCode` (GNU Radio's gr-fec, from `rkdsc_gr.digital_baselines`), so nothing here imports
gnuradio. Symbols complex64 [N, K] at unit average power, LLRs log P(b=0)/P(b=1) float32, bits
uint8 0/1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from rkdsc_core.channels import apply_keyed, make_channel, noise_variance


class BlockCode(Protocol):
    """A binary block code: `k` info bits → `n` coded bits, decoded from soft values."""

    n: int
    k: int
    name: str

    def encode(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [F, k] → uint8 [F, n]."""

    def decode(self, llr: np.ndarray) -> np.ndarray:
        """float32 LLRs [F, n] (log P(0)/P(1)) → uint8 [F, k]."""


CodeFactory = Callable[..., BlockCode]


# --------------------------------------------------------------------------------------------------
# constellations


def qam_constellation(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Gray-mapped square M-QAM (M = 4, 16, 64, …) at unit average energy.

    Returns (points complex128 [M], labels uint8 [M, log2 M]); `points[i]` carries bits `labels[i]`
    (first half of the bits on I, second half on Q, each Gray-coded along its axis).
    """
    bps = int(round(math.log2(m)))
    if 2**bps != m or bps % 2:
        raise ValueError(f"M={m} is not a square QAM order (4, 16, 64, …)")
    side = 2 ** (bps // 2)
    levels = np.arange(-(side - 1), side, 2, dtype=np.float64)  # [side]
    gray = np.arange(side) ^ (np.arange(side) >> 1)  # gray code of each level index
    h = bps // 2
    pts, labels = [], []
    for i in range(side):
        for q in range(side):
            pts.append(levels[i] + 1j * levels[q])
            bi = [(gray[i] >> (h - 1 - b)) & 1 for b in range(h)]
            bq = [(gray[q] >> (h - 1 - b)) & 1 for b in range(h)]
            labels.append(bi + bq)
    pts_a = np.asarray(pts)
    pts_a /= np.sqrt(np.mean(np.abs(pts_a) ** 2))
    return pts_a, np.asarray(labels, np.uint8)


def modulate(bits: np.ndarray, m: int) -> np.ndarray:
    """uint8 [N, nbits] (nbits a multiple of log2 M) → complex64 [N, nbits / log2 M]."""
    pts, labels = qam_constellation(m)
    bps = labels.shape[1]
    n, nb = bits.shape
    if nb % bps:
        raise ValueError(f"{nb} bits per row is not a multiple of {bps}")
    groups = bits.reshape(n, nb // bps, bps).astype(np.int64)
    idx_of_label = np.zeros(m, np.int64)
    idx_of_label[labels.astype(np.int64) @ (1 << np.arange(bps - 1, -1, -1))] = np.arange(m)
    value = groups @ (1 << np.arange(bps - 1, -1, -1))
    return pts[idx_of_label[value]].astype(np.complex64)


def demap_llr(y: np.ndarray, n0: np.ndarray, m: int) -> np.ndarray:
    """Max-log LLRs of equalised symbols.

    Args:
        y: complex [N, S] equalised symbols.
        n0: float [N, S] (or broadcastable) effective complex noise variance per symbol.
        m: QAM order.
    Returns:
        float32 [N, S·log2 M], log P(b=0)/P(b=1), bits in the order of `modulate`.
    """
    pts, labels = qam_constellation(m)
    d = np.abs(y[..., None] - pts) ** 2  # [N, S, M]
    bps = labels.shape[1]
    out = np.empty(y.shape + (bps,), np.float64)
    for b in range(bps):
        d0 = d[..., labels[:, b] == 0].min(-1)
        d1 = d[..., labels[:, b] == 1].min(-1)
        out[..., b] = (d1 - d0) / np.maximum(np.broadcast_to(n0, y.shape), 1e-12)
    return np.clip(out, -1e3, 1e3).reshape(y.shape[0], -1).astype(np.float32)


def digital_channel(
    symbols: np.ndarray, channel: str, snr_db: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """complex64 [N, S] of images 0…N−1 → (ZF-equalised symbols complex64 [N, S], effective N0
    float64 [N, S]), through the keyed draws every method shares (`channels.draws`)."""
    ch = make_channel(channel, equalizer="zf")
    x = torch.from_numpy(np.ascontiguousarray(symbols, np.complex64))
    out = apply_keyed(ch, x, float(snr_db), np.arange(len(x)), seed)
    return out.symbols.numpy(), noise_variance(out.snr_eff_db.double().numpy())


# --------------------------------------------------------------------------------------------------
# the links


def coded_link(
    bits: np.ndarray,
    code: BlockCode,
    m: int,
    channel: str,
    snr_db: float,
    seed: int,
) -> np.ndarray:
    """Send uint8 [N, k·F] bits (F codewords per image) coded by `code` and mapped to M-QAM, one
    frame per image (images 0…N−1, keyed draws) through `channel` at `snr_db`; returns the
    decoded uint8 [N, k·F]."""
    n_img, nb = bits.shape
    f = nb // code.k
    cw = code.encode(bits.reshape(n_img * f, code.k)).reshape(n_img, f * code.n)
    sym = modulate(cw, m)
    y, n0 = digital_channel(sym, channel, snr_db, seed)
    llr = demap_llr(y, n0, m).reshape(n_img * f, code.n)
    return code.decode(llr).reshape(n_img, nb)
