"""The KDL-DARTS search loop (PAPER.md §3): alternate α steps on held-out data and w steps.

`SupernetSearch` owns supernet, cost table, objective, both optimisers and the LR schedule; its
whole state round-trips through `state_dict()` so a stage can resume after an interruption.
Under torchrun the weight step runs through a DDP wrapper of the supernet (α included) and the
architect averages the α gradients across ranks; the state holds the un-wrapped supernet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from rkdsc_core import distributed
from rkdsc_core.config import SearchConfig
from rkdsc_core.distill.batches import Batch
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.nas.architect import Architect, ArchOptimConfig
from rkdsc_core.nas.cost import build_cost_table
from rkdsc_core.nas.genotype import Genotype, derive
from rkdsc_core.nas.objective import SearchObjective
from rkdsc_core.nas.supernet import Macro, SearchSpace, Supernet

log = logging.getLogger(__name__)


def search_space(cfg: SearchConfig) -> SearchSpace:
    return SearchSpace(primitives=tuple(cfg.primitives), nodes=cfg.nodes)


def search_macro(cfg: SearchConfig, in_channels: int, num_classes: int, feature_dim: int) -> Macro:
    return Macro(
        in_channels, num_classes, feature_dim, cfg.init_channels, cfg.layers, cfg.stem_multiplier
    )


def search_objective_weights(cfg: SearchConfig) -> KDWeights:
    """L_KD = kd_feature_weight·MSE + kd_kl_weight·KL(T); plus beta_ce·CE."""
    return KDWeights(cfg.kd_feature_weight, cfg.kd_kl_weight, cfg.beta_ce, cfg.kd_temperature)


class SupernetSearch:
    """Bilevel KDL-DARTS on a supernet of `macro`; one `train_epoch` per call."""

    def __init__(
        self,
        cfg: SearchConfig,
        macro: Macro,
        image_size: int,
        steps_per_epoch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.space = search_space(cfg)
        self.model = Supernet(self.space, macro, generator=generator).to(self.device)
        if self.device.type == "cpu":  # oneDNN is much faster in channels-last on small maps
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ddp = distributed.wrap(self.model)  # the model itself in one process
        cost = build_cost_table(self.space, macro, image_size, cfg.cost_metric)
        self.objective = SearchObjective(
            search_objective_weights(cfg), cost, cfg.lambda_cost, cfg.cost_budget
        )
        self.w_optimizer = torch.optim.SGD(
            self.model.weight_parameters(),
            lr=cfg.w_lr,
            momentum=cfg.w_momentum,
            weight_decay=cfg.w_weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optimizer, T_max=max(1, cfg.epochs * steps_per_epoch), eta_min=cfg.w_lr_min
        )
        self.architect = Architect(
            self.model,
            self.objective,
            ArchOptimConfig(
                lr=cfg.alpha_lr, weight_decay=cfg.alpha_weight_decay, second_order=cfg.second_order
            ),
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.architect.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.architect.optimizer.load_state_dict(state["a_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def _w_step(self, batch: Batch) -> dict[str, float]:
        terms = self.objective.weight_loss(self.ddp, batch)
        self.w_optimizer.zero_grad(set_to_none=True)
        (terms["loss"] * batch.loss_scale).backward()
        torch.nn.utils.clip_grad_norm_(list(self.model.weight_parameters()), self.cfg.w_grad_clip)
        self.w_optimizer.step()
        self.scheduler.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def train_epoch(
        self, epoch: int, pairs: Iterable[tuple[Batch, Batch]], progress: Any = None
    ) -> dict[str, float]:
        """One epoch over `(w batch, α batch)` pairs; α is frozen during warm-up epochs. Returns
        the mean loss terms, prefixed `w_` (training split) and `a_` (α split); under torchrun
        the pairs are this rank's parts and the means are over the global batches."""
        self.model.train()
        update_alpha = epoch >= self.cfg.warmup_epochs
        sums: dict[str, float] = {}  # terms weighted by the samples of each (part of a) batch
        for w_batch, a_batch in pairs:
            w_batch, a_batch = w_batch.to(self.device), a_batch.to(self.device)
            if update_alpha:
                lr = self.scheduler.get_last_lr()[0]
                a_terms = self.architect.step(w_batch, a_batch, lr, self.w_optimizer)
                for k, v in a_terms.items():
                    sums[f"a_{k}"] = sums.get(f"a_{k}", 0.0) + v * len(a_batch.y)
                sums["#a"] = sums.get("#a", 0.0) + len(a_batch.y)
            w_terms = self._w_step(w_batch)
            for k, v in w_terms.items():
                sums[f"w_{k}"] = sums.get(f"w_{k}", 0.0) + v * len(w_batch.y)
            sums["#w"] = sums.get("#w", 0.0) + len(w_batch.y)
            if progress is not None:
                progress.set_postfix(loss=f"{w_terms['loss']:.3f}", refresh=False)
                progress.update(1)
        distributed.sync_buffers_(self.model)  # BatchNorm statistics as rank 0 has them
        sums = distributed.all_reduce_sum(sums)
        return {k: v / max(sums["#" + k[0]], 1) for k, v in sums.items() if k[0] != "#"}

    def genotype(self) -> Genotype:
        return derive(
            self.model.alpha_normal,
            self.model.alpha_reduce,
            self.space.primitives,
            self.space.nodes,
        )

    def alpha_weights(self) -> dict[str, list[list[float]]]:
        """softmax(α) of both cells as nested lists `[E][O]` (for the α history)."""
        with torch.no_grad():
            return {
                name: np.round(torch.softmax(a, -1).cpu().numpy(), 5).tolist()
                for name, a in zip(("normal", "reduce"), self.model.arch_parameters())
            }

    def expected_cost(self) -> float:
        return self.objective.expected_cost(self.model)
