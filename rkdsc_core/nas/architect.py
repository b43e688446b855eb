"""The architect (PAPER.md §3): one α step of the bilevel problem min_α L_val(w*(α), α).

First order (default) uses ∇α L_val(w, α). Second order (DARTS eq. 7) unrolls one virtual weight
step w' = w − ξ∇w L_train(w, α) and subtracts ξ·∇²_{α,w} L_train · ∇w' L_val, the Hessian-vector
product taken by finite differences.

Under torchrun each rank holds its part of the global batches (`Batch.global_n`): the gradients it
computes (∇α, and for the second order the virtual step's ∇w and ∇w' L_val) are scaled by the
part's share and averaged across ranks, so every rank applies the global-batch α update.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from rkdsc_core import distributed
from rkdsc_core.distill.batches import Batch
from rkdsc_core.nas.objective import SearchObjective
from rkdsc_core.nas.supernet import Supernet


@dataclass(frozen=True)
class ArchOptimConfig:
    """Adam on α (DARTS reference values) and the unrolling choice."""

    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3
    second_order: bool = False


class Architect:
    """Owns the α optimiser; `step` updates `model.arch_parameters()` only."""

    def __init__(self, model: Supernet, objective: SearchObjective, cfg: ArchOptimConfig) -> None:
        self.model, self.objective, self.cfg = model, objective, cfg
        self.optimizer = torch.optim.Adam(
            model.arch_parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self._shadow: Supernet | None = None  # reused copy for the unrolled step

    def step(
        self,
        train_batch: Batch,
        val_batch: Batch,
        w_lr: float,
        w_optimizer: torch.optim.Optimizer | None = None,
    ) -> dict[str, float]:
        """One α update; returns the (weighted) validation loss terms as floats."""
        alphas = self.model.arch_parameters()
        self.optimizer.zero_grad(set_to_none=True)
        if self.cfg.second_order:
            terms, grads = self._unrolled_grads(train_batch, val_batch, w_lr, w_optimizer)
        else:
            terms = self.objective.arch_loss(self.model, val_batch)
            grads = [g * val_batch.loss_scale for g in torch.autograd.grad(terms["loss"], alphas)]
        grads = _global_mean(grads)
        for a, g in zip(alphas, grads):
            a.grad = g.detach()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def _virtual_model(
        self, train_batch: Batch, w_lr: float, w_optimizer: torch.optim.Optimizer | None
    ) -> Supernet:
        """A copy with w' = w − ξ(momentum·buf + ∇w L_train + wd·w), α shared by value."""
        if self._shadow is None:
            self._shadow = copy.deepcopy(self.model)
        shadow = self._shadow
        shadow.load_state_dict(self.model.state_dict())
        weights = list(self.model.weight_parameters())
        loss = self.objective.weight_loss(self.model, train_batch)["loss"]
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        grads = _global_mean(
            [
                torch.zeros_like(w) if g is None else g * train_batch.loss_scale
                for w, g in zip(weights, grads)
            ]
        )
        group = w_optimizer.param_groups[0] if w_optimizer is not None else {}
        momentum, wd = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        with torch.no_grad():
            for w, vw, g in zip(weights, shadow.weight_parameters(), grads):
                g = torch.zeros_like(w) if g is None else g
                buf = w_optimizer.state.get(w, {}).get("momentum_buffer") if w_optimizer else None
                step = g + wd * w + (momentum * buf if buf is not None else 0.0)
                vw.copy_(w - w_lr * step)
        return shadow

    def _unrolled_grads(
        self,
        train_batch: Batch,
        val_batch: Batch,
        w_lr: float,
        w_optimizer: torch.optim.Optimizer | None,
    ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        shadow = self._virtual_model(train_batch, w_lr, w_optimizer)
        v_weights = list(shadow.weight_parameters())
        terms = self.objective.arch_loss(shadow, val_batch)
        grads = torch.autograd.grad(
            terms["loss"], shadow.arch_parameters() + v_weights, allow_unused=True
        )
        d_alpha = list(grads[:2])
        d_w = [torch.zeros_like(w) if g is None else g for w, g in zip(v_weights, grads[2:])]
        d_w = _global_mean([g * val_batch.loss_scale for g in d_w])  # one vector on every rank
        hessian = self._hessian_vector(d_w, train_batch)
        s_val, s_train = val_batch.loss_scale, train_batch.loss_scale
        return terms, [da * s_val - w_lr * h * s_train for da, h in zip(d_alpha, hessian)]

    def _hessian_vector(self, vector: list[torch.Tensor], train_batch: Batch) -> list[torch.Tensor]:
        """(∇α L_train(w + εv) − ∇α L_train(w − εv)) / 2ε with ε = 0.01/‖v‖."""
        weights = list(self.model.weight_parameters())
        norm = torch.cat([v.flatten() for v in vector]).norm()
        eps = 0.01 / max(float(norm), 1e-12)
        alphas = self.model.arch_parameters()
        saved = [w.detach().clone() for w in weights]
        grads = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, v in zip(weights, saved, vector):
                    w.copy_(w0 + sign * eps * v)
            loss = self.objective.weight_loss(self.model, train_batch)["loss"]
            grads.append(torch.autograd.grad(loss, alphas))
        with torch.no_grad():  # restore exactly (adding and subtracting ε·v would round)
            for w, w0 in zip(weights, saved):
                w.copy_(w0)
        # the caller averages these across ranks (each with its part of the training batch)
        return [(gp - gn) / (2.0 * eps) for gp, gn in zip(*grads)]


def _global_mean(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """`grads` averaged across ranks (the list itself in one process)."""
    if distributed.is_active():
        grads = [g.detach().clone() for g in grads]
        distributed.all_reduce_mean_(grads)
    return grads
