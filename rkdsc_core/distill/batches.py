"""Aligned minibatches of images, labels and stored teacher targets, and clean accuracy.

The teacher never runs here: its outputs come from the feature store (`TeacherTargets`), indexed
with the same sample indices as the images. Under torchrun (`sharded=True`) every rank draws the
same global batches and keeps its contiguous part of each (`rkdsc_core.distributed`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rkdsc_core import distributed
from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.feature_store import apply_view
from rkdsc_core.data.targets import TeacherTargets
from rkdsc_core.data.transforms import Normalisation, to_tensor


@dataclass(frozen=True)
class Batch:
    """`x float32 [B,C,H,W]` normalised, `y int64 [B]`, teacher `feature float32 [B, D]`,
    teacher `logits float32 [B, classes]` (the last two None when no targets were given).
    `global_n`: samples in the global batch this is a rank's part of (None: the batch is whole)."""

    x: torch.Tensor
    y: torch.Tensor
    t_feature: torch.Tensor | None
    t_logits: torch.Tensor | None
    global_n: int | None = None

    def to(self, device: torch.device) -> Batch:
        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            self.x.to(device),
            self.y.to(device),
            mv(self.t_feature),
            mv(self.t_logits),
            self.global_n,
        )

    @property
    def loss_scale(self) -> float:
        """Factor for this part's mean loss so that DDP's gradient average is the gradient of the
        global-batch mean (1.0 for a whole batch)."""
        if self.global_n is None:
            return 1.0
        return distributed.loss_scale(len(self.y), self.global_n)


@dataclass(frozen=True)
class StoredViews:
    """Augmented views stored with the teacher's outputs on them (see `data.feature_store`):
    `embeddings float32 [V, N, D]`, `logits float32 [V, N, C]`, `params int8 [V, N, 3]` (dy, dx,
    flip; view 0 is the clean image) and the shift bound `pad`."""

    embeddings: np.ndarray
    logits: np.ndarray
    params: np.ndarray
    pad: int

    @property
    def num_views(self) -> int:
        return self.embeddings.shape[0]


@dataclass(frozen=True)
class KDData:
    """A split held in memory with its teacher targets (aligned by index), and optionally
    stored augmented views to sample from (`iterate(..., augment=True)`)."""

    arrays: ImageArrays
    targets: TeacherTargets | None
    norm: Normalisation
    views: StoredViews | None = None

    def __post_init__(self) -> None:
        if self.targets is not None and len(self.targets) < len(self.arrays):
            raise ValueError(
                f"teacher targets cover {len(self.targets)} images, the split has "
                f"{len(self.arrays)}: rebuild the feature store"
            )

    def __len__(self) -> int:
        return len(self.arrays)

    def batch(self, idx: np.ndarray, view: np.ndarray | None = None) -> Batch:
        """The samples at `idx int64 [B]`, each seen through stored view `view int [B]` (None:
        the clean images)."""
        x = to_tensor(self.arrays.images[idx], self.norm)
        y = torch.as_tensor(self.arrays.labels[idx], dtype=torch.long)
        if view is not None:
            v = self.views
            x = apply_view(x, v.params[view, idx], v.pad)
            t_feat = np.asarray(v.embeddings[view, idx], dtype=np.float32)
            t_log = np.asarray(v.logits[view, idx], dtype=np.float32)
            return Batch(x, y, torch.as_tensor(t_feat), torch.as_tensor(t_log))
        if self.targets is None:
            return Batch(x, y, None, None)
        t_feat = torch.as_tensor(np.asarray(self.targets.embeddings[idx], dtype=np.float32))
        t_log = torch.as_tensor(np.asarray(self.targets.logits[idx], dtype=np.float32))
        return Batch(x, y, t_feat, t_log)


def iterate(
    data: KDData,
    indices: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
    augment: bool = False,
    sharded: bool = False,
) -> Iterator[Batch]:
    """Minibatches over `indices` (shuffled when `rng` is given); with `augment`, each sample
    is drawn through one of the stored views, uniformly (needs `data.views` and `rng`). With
    `sharded`, each global batch (same order and views on every rank) is cut to this rank's
    contiguous part, `global_n` set."""
    if augment and (data.views is None or rng is None):
        raise ValueError("augmented batches need stored views and a random generator")
    order = rng.permutation(indices) if rng is not None else np.asarray(indices)
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        if not len(idx):
            continue
        view = rng.integers(0, data.views.num_views, len(idx)) if augment else None
        if rng is None:
            idx = np.sort(idx)
        if not sharded:
            yield data.batch(idx, view)
            continue
        lo, hi = distributed.part_bounds(len(idx))
        part = data.batch(idx[lo:hi], None if view is None else view[lo:hi])
        yield dataclasses.replace(part, global_n=len(idx))


def progress(total: int, desc: str) -> Any:
    """A tqdm bar; redrawn at most every 30 s when stderr is not a terminal (log files)."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, leave=False, mininterval=0.1 if sys.stderr.isatty() else 30.0
    )


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: KDData,
    indices: np.ndarray | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    sharded: bool = False,
) -> dict[str, float]:
    """Top-1 accuracy of `model` (returning `(feature, logits)`) and, with targets, the feature MSE
    and top-1 agreement with the teacher; the model's train/eval mode is restored. With `sharded`
    (every rank must call it) each rank scores its part of the indices and the sums are reduced."""
    was_training = model.training
    model.eval()
    idx = np.arange(len(data)) if indices is None else indices
    correct = agree = 0
    sq_err = 0.0
    for batch in iterate(data, distributed.part(idx) if sharded else idx, batch_size):
        batch = batch.to(torch.device(device))
        feature, logits = model(batch.x)
        pred = logits.argmax(-1)
        correct += int((pred == batch.y).sum())
        if batch.t_feature is not None:
            sq_err += float(((feature - batch.t_feature) ** 2).mean(-1).sum())
            agree += int((pred == batch.t_logits.argmax(-1)).sum())
    model.train(was_training)
    if sharded:
        tot = distributed.all_reduce_sum({"c": correct, "a": agree, "e": sq_err})
        correct, agree, sq_err = int(round(tot["c"])), int(round(tot["a"])), tot["e"]
    out = {"accuracy": correct / max(len(idx), 1), "n": int(len(idx))}
    if data.targets is not None:
        out["feature_mse"] = sq_err / max(len(idx), 1)
        out["teacher_agreement"] = agree / max(len(idx), 1)
    return out
