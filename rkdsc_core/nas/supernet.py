"""KDL-DARTS search space and supernet (PAPER.md §3): mixed op, normal/reduction cells, network.

Architecture parameters `alpha_normal`, `alpha_reduce` (`float32 [E, O]`, E edges per cell, O ops)
are kept apart from the weights: use `arch_parameters()` and `weight_parameters()`. The network
maps `float32 [B, C_in, H, W]` (normalised) to `(feature float32 [B, D], logits [B, num_classes])`,
the same contract as the derived student (`student.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rkdsc_core.nas.ops import OPS, FactorizedReduce, ReLUConvBN, make_op
from rkdsc_core.nas.primitives import DARTS_PRIMITIVES

ALPHA_NAMES = ("alpha_normal", "alpha_reduce")


@dataclass(frozen=True)
class SearchSpace:
    """The cell search space: candidate ops (their order defines α's columns) and node count."""

    primitives: tuple[str, ...] = DARTS_PRIMITIVES
    nodes: int = 4

    def __post_init__(self) -> None:
        unknown = [p for p in self.primitives if p not in OPS]
        if unknown:  # a ValueError listing the registered ops
            raise OPS.unknown(unknown[0])
        if len(set(self.primitives)) != len(self.primitives):
            raise ValueError("search-space primitives must be unique")
        if self.nodes < 1:
            raise ValueError(f"a cell needs at least one node, got {self.nodes}")

    @property
    def num_edges(self) -> int:
        """Edges of one cell: node j has 2 + j inputs."""
        return sum(2 + j for j in range(self.nodes))

    def edges(self) -> list[tuple[int, int]]:
        """`(node, input)` of each α row, in row order (inputs 0, 1 are the cell inputs)."""
        return [(j, i) for j in range(self.nodes) for i in range(2 + j)]


@dataclass(frozen=True)
class Macro:
    """The fixed network skeleton around the cells (shared by supernet and derived student)."""

    in_channels: int = 1
    num_classes: int = 10
    feature_dim: int = 64
    init_channels: int = 8
    layers: int = 3
    stem_multiplier: int = 2
    stem_stride: int = 2

    def reduction_layers(self) -> tuple[int, ...]:
        """Cells that halve H, W and double C: at 1/3 and 2/3 of the depth (DARTS)."""
        return tuple(sorted({self.layers // 3, 2 * self.layers // 3} - {0}))


@dataclass(frozen=True)
class CellSlot:
    """Where one cell sits: its width `c`, whether it (or its predecessor) reduces, input widths."""

    index: int
    c: int
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int


def cell_plan(macro: Macro, multiplier: int) -> tuple[list[CellSlot], int]:
    """The cell slots of `macro` and the width of the last cell's output (`multiplier * c`)."""
    c = macro.init_channels
    c_stem = macro.stem_multiplier * c
    c_pp, c_p, red_prev, slots = c_stem, c_stem, False, []
    reductions = macro.reduction_layers()
    for i in range(macro.layers):
        red = i in reductions
        if red:
            c *= 2
        slots.append(CellSlot(i, c, red, red_prev, c_pp, c_p))
        c_pp, c_p, red_prev = c_p, multiplier * c, red
    return slots, c_p


def make_stem(macro: Macro) -> nn.Module:
    """Conv 3×3 (stride `stem_stride`) → BN: a stride-2 stem keeps CPU cost low at 28×28."""
    c_stem = macro.stem_multiplier * macro.init_channels
    return nn.Sequential(
        nn.Conv2d(macro.in_channels, c_stem, 3, macro.stem_stride, 1, bias=False),
        nn.BatchNorm2d(c_stem),
    )


def make_preprocess(slot: CellSlot, affine: bool) -> tuple[nn.Module, nn.Module]:
    """1×1 adapters of the two cell inputs (the older one is reduced if the last cell reduced)."""
    if slot.reduction_prev:
        pre0: nn.Module = FactorizedReduce(slot.c_prev_prev, slot.c, affine)
    else:
        pre0 = ReLUConvBN(slot.c_prev_prev, slot.c, 1, 1, 0, affine)
    return pre0, ReLUConvBN(slot.c_prev, slot.c, 1, 1, 0, affine)


class MixedOp(nn.Module):
    """Softmax(α)-weighted sum of every candidate op on one edge; `none` is skipped (it is 0)."""

    def __init__(self, primitives: tuple[str, ...], c: int, stride: int) -> None:
        super().__init__()
        self.primitives = primitives
        ops = []
        for name in primitives:
            op = make_op(name, c, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`x float32 [B,C,H,W]`, `weights float32 [O]` (sums to 1) → `[B,C,H',W']`."""
        out = None
        for name, w, op in zip(self.primitives, weights, self.ops):
            if name == "none":
                continue
            term = w * op(x)
            out = term if out is None else out + term
        if out is None:  # a space of `none` only
            return self.ops[0](x)
        return out


class SearchCell(nn.Module):
    """A DARTS cell whose every edge is a `MixedOp`; output = concat of all intermediate nodes."""

    def __init__(self, space: SearchSpace, slot: CellSlot) -> None:
        super().__init__()
        self.reduction = slot.reduction
        self.nodes = space.nodes
        self.pre0, self.pre1 = make_preprocess(slot, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(space.primitives, slot.c, 2 if slot.reduction and i < 2 else 1)
            for _, i in space.edges()
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`weights float32 [E, O]` (softmax rows) → `float32 [B, nodes*c, H', W']`."""
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            n_in = len(states)
            s = sum(self.edges[offset + i](h, weights[offset + i]) for i, h in enumerate(states))
            offset += n_in
            states.append(s)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """The over-parameterised network searched by KDL-DARTS; `head` maps feature → logits."""

    def __init__(
        self,
        space: SearchSpace,
        macro: Macro,
        generator: torch.Generator | None = None,
        alpha_init_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.space, self.macro = space, macro
        self.stem = make_stem(macro)
        slots, c_out = cell_plan(macro, space.nodes)
        self.slots = slots
        self.cells = nn.ModuleList(SearchCell(space, s) for s in slots)
        self.project = nn.Linear(c_out, macro.feature_dim)
        self.head = nn.Linear(macro.feature_dim, macro.num_classes)
        shape = (space.num_edges, len(space.primitives))
        self.alpha_normal = nn.Parameter(alpha_init_std * torch.randn(shape, generator=generator))
        self.alpha_reduce = nn.Parameter(alpha_init_std * torch.randn(shape, generator=generator))

    def arch_parameters(self) -> list[nn.Parameter]:
        """α of the normal and the reduction cell (each `float32 [E, O]`)."""
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except α."""
        return (p for n, p in self.named_parameters() if n not in ALPHA_NAMES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x float32 [B,C,H,W]` → `(feature float32 [B, D], logits float32 [B, classes])`."""
        w_normal = F.softmax(self.alpha_normal, dim=-1)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        feature = self.project(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return feature, self.head(feature)
