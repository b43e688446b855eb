"""The KDL-DARTS objective (PAPER.md §3): L = L_KD + β·L_CE on both levels, + λ·C(α)/C_ref on α.

L_KD = feature MSE to the stored teacher embedding (the supernet's own linear projection brings it
to the teacher width) + optional KL to the teacher logits at temperature T. Plain DARTS is the
special case of zero KD weights and λ = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rkdsc_core.distill.batches import Batch
from rkdsc_core.distill.losses import KDWeights, kd_objective
from rkdsc_core.nas.cost import CostTable, cost_penalty
from rkdsc_core.nas.supernet import Supernet


@dataclass(frozen=True)
class SearchObjective:
    """`weight_loss` for the w step, `arch_loss` (adds the cost term) for the α step."""

    kd: KDWeights
    cost: CostTable
    lambda_cost: float = 0.0
    budget: float | None = None

    def task_loss(self, model: Supernet, batch: Batch) -> dict[str, torch.Tensor]:
        """KD + CE terms of `batch` (weighted, with `"loss"`)."""
        feature, logits = model(batch.x)
        t_feat = batch.t_feature if batch.t_feature is not None else feature.detach()
        t_log = batch.t_logits if batch.t_logits is not None else logits.detach()
        if (self.kd.feature > 0 or self.kd.kl > 0) and batch.t_feature is None:
            raise ValueError("a KD search objective needs teacher targets in every batch")
        return kd_objective(feature, logits, batch.y, t_feat, t_log, self.kd)

    def weight_loss(self, model: Supernet, batch: Batch) -> dict[str, torch.Tensor]:
        """Lower level: the task loss only (the cost term does not depend on w)."""
        return self.task_loss(model, batch)

    def penalty(self, model: Supernet) -> torch.Tensor:
        """λ·C(α)/C_ref (or the hinged version) as a scalar tensor differentiable in α."""
        return self.lambda_cost * cost_penalty(
            self.cost, model.alpha_normal, model.alpha_reduce, self.budget
        )

    def arch_loss(self, model: Supernet, batch: Batch) -> dict[str, torch.Tensor]:
        """Upper level: task loss on validation data + the complexity penalty."""
        terms = self.task_loss(model, batch)
        if self.lambda_cost > 0:
            terms["loss_cost"] = self.penalty(model)
            terms["loss"] = terms["loss"] + terms["loss_cost"]
        return terms

    def expected_cost(self, model: Supernet) -> float:
        """C(α) in the table's unit (parameters or FLOPs)."""
        with torch.no_grad():
            return float(self.cost.expected(model.alpha_normal, model.alpha_reduce))
