"""A CRC-aided polar code for the frame header: encoder, frozen-set construction and a successive-
cancellation list (SCL) decoder in numpy (Arıkan 2009; Tal & Vardy 2015; Niu & Chen 2012).

The header is short (tens of bits) and must decode near −10 dB Es/N0, where a CRC-aided list
decoder is within a fraction of a dB of the finite-length bound. Natural bit order (no bit
reversal): for a block u = [u_a, u_b], x = [x_a ⊕ x_b, x_b] with x_a = enc(u_a), x_b = enc(u_b).

The decoder walks that recursion once. Frozen (rate-0) subtrees are decided in one step, so its cost
follows the information bits, not the block length. The list is kept as rows of arrays; a leaf
that splits paths returns which parent each surviving row came from, and every level above
re-indexes its stored state by it (the lazy copy of Tal & Vardy, written as fancy indexing).
LLRs are positive for bit 0; the path metric is the min-sum one, Σ |λ| over decisions against λ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np


def bhattacharyya(n: int, design_z: float) -> np.ndarray:
    """Bhattacharyya parameters of the n = 2^m synthetic channels in natural order, float64 [n]
    (lower is more reliable), for a channel of parameter `design_z` (e^{−Es/N0·…} for BPSK).

    Computed in the log domain: ln z⁻ = ln(2z − z²), ln z⁺ = 2 ln z.
    """
    if n < 1 or n & (n - 1):
        raise ValueError(f"polar block length must be a power of two, got {n}")
    logz = np.array([np.log(design_z)])
    while len(logz) < n:
        worse = logz + np.log(2.0 - np.exp(logz))  # ln(2z − z²) = ln z + ln(2 − z)
        better = 2.0 * logz
        # channel j splits into 2j (minus) and 2j + 1 (plus): the transform applied first is the
        # most significant bit of the index, as in the encoder's [u_a | u_b] recursion
        logz = np.stack([worse, better], axis=1).reshape(-1)
    return logz


def _order(n: int, design_snr_db: float) -> np.ndarray:
    """Synthetic channel indices from the least to the most reliable (int64 [n])."""
    z = np.exp(-(10.0 ** (design_snr_db / 10.0)))
    return np.argsort(-bhattacharyya(n, z), kind="stable")


def polar_transform(u: np.ndarray) -> np.ndarray:
    """x = u·F^{⊗m} over GF(2), natural order: uint8 [..., n] → uint8 [..., n]."""
    x = np.array(u, dtype=np.uint8, copy=True)
    n = x.shape[-1]
    half = 1
    while half < n:
        x = x.reshape(*x.shape[:-1], n // (2 * half), 2, half)
        x[..., 0, :] ^= x[..., 1, :]
        x = x.reshape(*x.shape[:-3], n)
        half *= 2
    return x


@dataclass(frozen=True)
class PolarCode:
    """An (n, k) polar code whose k information bits end with a CRC checked by `crc_ok`.

    Args:
        n: block length (a power of two).
        k: information bits (CRC included).
        design_snr_db: the per-coded-bit Es/N0 (BPSK, real) at which the frozen set is chosen.
        list_size: L of the SCL decoder.
    """

    n: int
    k: int
    design_snr_db: float = 0.0
    list_size: int = 8

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError(f"polar n must be a power of two >= 2, got {self.n}")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"polar k must be in 1..{self.n}, got {self.k}")
        if self.list_size < 1:
            raise ValueError(f"list size must be >= 1, got {self.list_size}")

    @cached_property
    def info_positions(self) -> np.ndarray:
        """The k most reliable synthetic channels, sorted (int64 [k])."""
        order = _order(self.n, self.design_snr_db)
        return np.sort(order[-self.k :])

    @cached_property
    def frozen(self) -> np.ndarray:
        """bool [n], True where u_i is frozen to 0."""
        mask = np.ones(self.n, dtype=bool)
        mask[self.info_positions] = False
        return mask

    def encode(self, bits: np.ndarray) -> np.ndarray:
        """k information bits (uint8 [k]) → n code bits (uint8 [n])."""
        bits = np.asarray(bits, dtype=np.uint8)
        if bits.shape != (self.k,):
            raise ValueError(f"expected {self.k} bits, got shape {bits.shape}")
        u = np.zeros(self.n, dtype=np.uint8)
        u[self.info_positions] = bits
        return polar_transform(u)

    def decode(self, llr: np.ndarray, crc_ok: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """CRC-aided SCL: the most likely of the L surviving paths whose information bits pass
        `crc_ok`, uint8 [k]; None when none does. `llr` float [n], positive favouring bit 0."""
        llr = np.asarray(llr, dtype=np.float64)
        if llr.shape != (self.n,):
            raise ValueError(f"expected {self.n} LLRs, got shape {llr.shape}")
        state = _ListState(self.list_size)
        _, u_hat, _ = _decode_node(llr[None, :], self.frozen, state)
        order = np.argsort(state.metric, kind="stable")
        for row in order:
            bits = u_hat[row, self.info_positions]
            if crc_ok(bits):
                return bits.astype(np.uint8)
        return None


class _ListState:
    """Path metrics of the current list rows (float64 [rows])."""

    def __init__(self, list_size: int) -> None:
        self.list_size = list_size
        self.metric = np.zeros(1)


def _f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Min-sum check-node update."""
    return np.sign(a) * np.sign(b) * np.minimum(np.abs(a), np.abs(b))


def _decode_node(
    alpha: np.ndarray, frozen: np.ndarray, state: _ListState
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the subtree whose LLRs are `alpha` float [rows, m] and frozen mask bool [m].

    Returns (beta uint8 [rows', m] the re-encoded subtree, u uint8 [rows', m] its decided bits,
    parent int64 [rows'] the incoming row each outgoing row descends from).
    """
    rows, m = alpha.shape
    if frozen.all():  # rate-0: every bit is 0; penalise the LLRs that disagree
        state.metric = state.metric + np.sum(np.abs(alpha) * (alpha < 0), axis=1)
        zeros = np.zeros((rows, m), dtype=np.uint8)
        return zeros, zeros, np.arange(rows)
    if m == 1:
        return _leaf(alpha[:, 0], state)
    if frozen[:-1].all():  # repetition node: the codeword is all zeros or all ones
        return _repetition(alpha, state)
    h = m // 2
    a1, a2 = alpha[:, :h], alpha[:, h:]
    beta_l, u_l, par_l = _decode_node(_f(a1, a2), frozen[:h], state)
    a1, a2 = a1[par_l], a2[par_l]
    g = a2 + (1.0 - 2.0 * beta_l) * a1
    beta_r, u_r, par_r = _decode_node(g, frozen[h:], state)
    beta_l, u_l = beta_l[par_r], u_l[par_r]
    beta = np.concatenate([beta_l ^ beta_r, beta_r], axis=1)
    u = np.concatenate([u_l, u_r], axis=1)
    return beta, u, par_l[par_r]


def _repetition(alpha: np.ndarray, state: _ListState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A node whose only information bit is its last: every row splits into the all-zero and
    the all-one codeword (the min-sum metric of each is the sum of its disagreeing |LLR|s), the
    best `list_size` survive — what the recursion down to that leaf computes, in one step."""
    rows, m = alpha.shape
    mag = np.abs(alpha)
    neg = alpha < 0
    pm0 = state.metric + np.sum(mag * neg, axis=1)
    pm1 = state.metric + np.sum(mag * ~neg, axis=1)
    cand = np.concatenate([pm0, pm1])
    keep = np.argsort(cand, kind="stable")[: state.list_size]
    state.metric = cand[keep]
    parent = keep % rows
    bit = (keep >= rows).astype(np.uint8)[:, None]
    beta = np.repeat(bit, m, axis=1)
    u = np.zeros((len(keep), m), dtype=np.uint8)
    u[:, -1] = bit[:, 0]
    return beta, u, parent


def _leaf(lam: np.ndarray, state: _ListState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An information bit: every row splits into 0 and 1; the best `list_size` survive."""
    rows = len(lam)
    pm0 = state.metric + np.abs(lam) * (lam < 0)
    pm1 = state.metric + np.abs(lam) * (lam >= 0)
    cand = np.concatenate([pm0, pm1])
    keep = np.argsort(cand, kind="stable")[: state.list_size]
    state.metric = cand[keep]
    parent = keep % rows
    bit = (keep >= rows).astype(np.uint8)[:, None]
    return bit, bit, parent
