"""Which images a run uses, independent of the order the dataset stores them in (issue 20).

Every limit (`data.train_limit` / `test_limit`, `rkdsc eval --n`, `rkdsc loopback --n`, the
feature store, the search subset) is a seeded class-balanced subset, and every validation split
is seeded and class-stratified, so a class-sorted ImageFolder tree is treated like a shuffled one.
Pure numpy on `labels int64 [N]`; every function returns sorted `int64` dataset indices.
"""

from __future__ import annotations

import hashlib

import numpy as np

from rkdsc_core.errors import RkdscError

#: The seed of every size limit, so that `eval --n`, the loopbacks and training's limits pick the
#: same images whatever the channel seed (the channel draws have their own `--seed`).
SUBSET_SEED = 0
SUBSET_RULE = "class-balanced, seeded (rkdsc_core.data.subsets.balanced_subset)"


def _labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {y.shape}")
    return y.astype(np.int64, copy=False)


def _pick(y: np.ndarray, classes: np.ndarray, quota: np.ndarray, rng) -> np.ndarray:
    """`quota[i]` random members of class `classes[i]`, sorted."""
    parts = [
        rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def balanced_quota(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Images per class for a balanced subset of `n`: equal shares (the remainder to random
    classes), a class with too few gives all it has and the others share the rest."""
    counts = np.asarray(counts, np.int64)
    if not 0 <= n <= counts.sum():
        raise ValueError(f"cannot take {n} of {counts.sum()} images")
    quota = np.zeros_like(counts)
    left = int(n)
    while left > 0:
        open_ = np.flatnonzero(quota < counts)
        share, extra = divmod(left, len(open_))
        add = np.full(len(open_), share)
        add[rng.permutation(len(open_))[:extra]] += 1
        add = np.minimum(add, counts[open_] - quota[open_])
        quota[open_] += add
        left -= int(add.sum())
    return quota


def balanced_subset(labels, n: int | None, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of a seeded class-balanced subset of `n` images (all when `n` is None or
    at least N): `balanced_quota` images per class, each class's taken in index order from a
    seeded random starting index (wrapping round). Where the dataset's order mixes the classes
    the subset is long runs of consecutive indices (so multi-image radio frames stay full);
    where it is class-sorted, one run per class. The same (labels, n, seed) give the same
    indices."""
    y = _labels(labels)
    if n is None or n >= len(y):
        return np.arange(len(y), dtype=np.int64)
    if n < 0:
        raise RkdscError(f"a subset needs n >= 0 images, got {n}")
    rng = np.random.default_rng([int(seed), 20])
    _, cls, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = balanced_quota(counts, int(n), rng)
    order = np.roll(np.arange(len(y), dtype=np.int64), -int(rng.integers(len(y))))
    by_class = np.argsort(cls[order], kind="stable")  # positions in `order`, class by class
    rank = np.empty(len(y), np.int64)
    rank[by_class] = np.arange(len(y)) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.sort(order[rank < quota[cls[order]]])


def stratified_quota(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Images per class for a stratified sample of `n`: proportional to `counts`, rounded by
    largest remainder (ties broken at random)."""
    counts = np.asarray(counts, np.int64)
    exact = n * counts / max(int(counts.sum()), 1)
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((rng.random(len(counts)), -(exact - quota)))
    quota[order[: n - int(quota.sum())]] += 1
    return quota


def validation_split(
    labels, fraction: float, seed: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, val): sorted index arrays. `val` is a seeded class-stratified `int(N * fraction)`
    of the images, cut to a class-balanced `limit` of them when given (so a run with a `limit`
    validates on images the run without one also held out); `fit` is every other image."""
    y = _labels(labels)
    if not 0.0 <= fraction < 1.0:
        raise RkdscError(f"data.val_fraction must be in [0, 1), got {fraction}")
    n_val = int(len(y) * fraction)
    rng = np.random.default_rng([int(seed), 21])
    classes, counts = np.unique(y, return_counts=True)
    val = _pick(y, classes, stratified_quota(counts, n_val, rng), rng)
    if limit is not None and limit < len(val):
        val = val[balanced_subset(y[val], limit, seed)]
    fit = np.setdiff1d(np.arange(len(y), dtype=np.int64), val, assume_unique=True)
    return fit, val


def indices_sha256(index) -> str:
    """SHA-256 of the indices as little-endian int64: names a selection in a JSON report."""
    return hashlib.sha256(np.asarray(index, dtype="<i8").tobytes()).hexdigest()


def selection_record(index, labels, total: int, seed: int = SUBSET_SEED) -> dict:
    """What a report records about the images it scored: how many of the split, the rule, the
    SHA-256 of their dataset indices and the images per class (every class present or not)."""
    classes, counts = np.unique(_labels(labels), return_counts=True)
    return {
        "n": len(labels),
        "of": int(total),
        "rule": "all" if len(labels) == total else SUBSET_RULE,
        "seed": int(seed),
        "indices_sha256": indices_sha256(index),
        "class_counts": {int(c): int(k) for c, k in zip(classes, counts, strict=True)},
    }
