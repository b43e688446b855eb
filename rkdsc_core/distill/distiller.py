"""Stage 1 of robust KD (PAPER.md §4): the student learns the frozen teacher's stored outputs.

The teacher is not a module here: it stays frozen because only its pre-stored embeddings and logits
(`TeacherTargets`, via `Batch`) are used — never recomputed. Loss = feature MSE + KL(T) + β·CE.
"""

from __future__ import annotations

import torch
from torch import nn

from rkdsc_core.distill.batches import Batch
from rkdsc_core.distill.losses import KDWeights, kd_objective


class Distiller(nn.Module):
    """Wraps a student returning `(feature [B, D], logits [B, C])` with its KD objective."""

    def __init__(self, student: nn.Module, weights: KDWeights) -> None:
        super().__init__()
        self.student = student
        self.weights = weights

    def forward_train(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named, already-weighted loss terms of one batch, always with `"loss"` (their sum)."""
        if batch.t_feature is None or batch.t_logits is None:
            raise ValueError("stage-1 distillation needs teacher targets in every batch")
        feature, logits = self.student(batch.x)
        return kd_objective(feature, logits, batch.y, batch.t_feature, batch.t_logits, self.weights)

    @torch.no_grad()
    def forward_test(self, x: torch.Tensor) -> torch.Tensor:
        """Student logits `float32 [B, C]` for `x float32 [B,C,H,W]`."""
        return self.student(x)[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.student(x)
