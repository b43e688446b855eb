"""Cost model of KDL-DARTS (PAPER.md §3): per-op parameters or FLOPs, and the complexity penalty.

Each candidate op is instantiated at the width, stride and resolution of every edge of every cell
of the network, as it would appear in the derived student. The expected cost is
C(α) = Σ_cells Σ_edges Σ_ops softmax(α)_o · cost(o), and the penalty λ·C(α)/C_ref (or a hinge
λ·max(0, C(α) − budget)/C_ref) is differentiable in α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rkdsc_core.nas.ops import make_op
from rkdsc_core.nas.supernet import Macro, SearchSpace, cell_plan
from rkdsc_core.torch_utils import count_params

COST_METRICS = ("params", "flops")


def count_flops(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add, conv and matmul only, as `torch.utils.flop_counter` counts) of one
    forward pass on a zero input of `input_shape` (e.g. `(1, C, H, W)`); the module is left in its
    training mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(torch.zeros(input_shape))
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def op_cost(name: str, c: int, stride: int, hw: int, metric: str) -> float:
    """Cost of primitive `name` on `c` channels, `stride`, input `hw × hw`."""
    if metric not in COST_METRICS:
        raise ValueError(f"unknown cost metric '{metric}' (choose from {', '.join(COST_METRICS)})")
    op = make_op(name, c, stride, affine=True)
    if metric == "params":
        return float(count_params(op))
    return float(count_flops(op, (1, c, hw, hw)))


@dataclass(frozen=True)
class CostTable:
    """Per-edge op costs summed over all normal / all reduction cells (`float64 [E, O]`)."""

    metric: str
    normal: torch.Tensor
    reduce: torch.Tensor

    @property
    def reference(self) -> float:
        """C at uniform α (each edge's mean op cost): makes C(α)/C_ref = 1 at the search start."""
        return float(self.normal.mean(dim=1).sum() + self.reduce.mean(dim=1).sum())

    def expected(self, alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor) -> torch.Tensor:
        """C(α): scalar tensor, differentiable in both α (`float32 [E, O]` logits)."""
        c = (F.softmax(alpha_normal, -1) * self.normal.to(alpha_normal)).sum()
        return c + (F.softmax(alpha_reduce, -1) * self.reduce.to(alpha_reduce)).sum()


def build_cost_table(
    space: SearchSpace, macro: Macro, image_size: int, metric: str = "params"
) -> CostTable:
    """Instantiate every op on every edge of every cell position of `macro` and sum the costs."""
    slots, _ = cell_plan(macro, space.nodes)
    hw = math.ceil(image_size / macro.stem_stride)
    tables = {
        False: torch.zeros(space.num_edges, len(space.primitives), dtype=torch.float64),
        True: torch.zeros(space.num_edges, len(space.primitives), dtype=torch.float64),
    }
    cache: dict[tuple, float] = {}
    for slot in slots:
        for e, (_, i) in enumerate(space.edges()):
            stride = 2 if slot.reduction and i < 2 else 1
            hw_in = hw if (i < 2 or not slot.reduction) else math.ceil(hw / 2)
            for o, name in enumerate(space.primitives):
                key = (name, slot.c, stride, hw_in)
                if key not in cache:
                    cache[key] = op_cost(name, slot.c, stride, hw_in, metric)
                tables[slot.reduction][e, o] += cache[key]
        if slot.reduction:
            hw = math.ceil(hw / 2)
    return CostTable(metric, tables[False], tables[True])


def cost_penalty(
    table: CostTable,
    alpha_normal: torch.Tensor,
    alpha_reduce: torch.Tensor,
    budget: float | None = None,
) -> torch.Tensor:
    """C(α)/C_ref, or max(0, C(α) − budget)/C_ref when a `budget` (same unit) is given."""
    c = table.expected(alpha_normal, alpha_reduce)
    if budget is not None:
        c = torch.clamp(c - budget, min=0.0)
    return c / table.reference
