"""Teacher targets aligned with a dataset split: what the feature store serves to search and KD."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TeacherTargets:
    """Teacher outputs for images `0..N-1` of one split (same order as `load_dataset`).

    embeddings: float32 [N, D] (the feature the student learns; may be a read-only memmap)
    logits:     float32 [N, C]
    """

    embeddings: np.ndarray
    logits: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.logits.ndim != 2:
            raise ValueError("embeddings and logits must be 2-D [N, D] / [N, C]")
        if len(self.embeddings) != len(self.logits):
            raise ValueError(
                f"embeddings ({len(self.embeddings)}) and logits ({len(self.logits)}) differ in N"
            )

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def take(self, n: int | None) -> TeacherTargets:
        if n is None or n >= len(self):
            return self
        return TeacherTargets(self.embeddings[:n], self.logits[:n])
