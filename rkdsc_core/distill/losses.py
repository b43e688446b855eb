"""Knowledge-distillation losses as pure functions (PAPER.md §3–4), and their weighted sum.

All take batched tensors and return a scalar `float32` tensor (mean over the batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def feature_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between `student float32 [B, D]` and `teacher float32 [B, D]`."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"feature shapes differ: student {tuple(student.shape)} vs teacher "
            f"{tuple(teacher.shape)} (project the student to the teacher width)"
        )
    return F.mse_loss(student, teacher)


def kd_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-`T` softmaxes, times T² (Hinton et al.), averaged
    over the batch. Logits `float32 [B, C]`."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `logits float32 [B, C]` against `labels int64 [B]`."""
    return F.cross_entropy(logits, labels)


@dataclass(frozen=True)
class KDWeights:
    """KD objective weights: feature·MSE + kl·KL(T) + ce·CE (a zero weight skips the term)."""

    feature: float = 1.0
    kl: float = 1.0
    ce: float = 1.0
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if min(self.feature, self.kl, self.ce) < 0:
            raise ValueError(f"KD weights must be non-negative, got {self}")
        if self.temperature <= 0:
            raise ValueError(f"KD temperature must be positive, got {self.temperature}")


def kd_objective(
    feature: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_feature: torch.Tensor,
    teacher_logits: torch.Tensor,
    weights: KDWeights,
) -> dict[str, torch.Tensor]:
    """Named, already-weighted terms `loss_feature`, `loss_kl`, `loss_ce` (those with non-zero
    weight) and their sum `loss`. Shapes: feature `[B, D]`, logits `[B, C]`, labels `[B]`."""
    terms: dict[str, torch.Tensor] = {}
    if weights.feature > 0:
        terms["loss_feature"] = weights.feature * feature_mse(feature, teacher_feature)
    if weights.kl > 0:
        terms["loss_kl"] = weights.kl * kd_kl(logits, teacher_logits, weights.temperature)
    if weights.ce > 0:
        terms["loss_ce"] = weights.ce * cross_entropy(logits, labels)
    if not terms:
        raise ValueError("every KD weight is zero: nothing to train")
    terms["loss"] = sum(terms.values())
    return terms
