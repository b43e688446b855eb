"""The derived student (PAPER.md §3): a network built only from a genotype plus plain-data sizes.

`build_student(genotype, **arch)` returns a module whose `forward(x float32 [B,C,H,W] normalised)`
gives `(feature float32 [B, D], logits float32 [B, num_classes])`: `feature` is the teacher-width
embedding the CAT codec carries (a final linear projection), `logits = student.head(feature)`.
`student_spec` / `student_from_spec` round-trip the constructor arguments as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.ops import make_op
from rkdsc_core.nas.supernet import CellSlot, Macro, cell_plan, make_preprocess, make_stem

STUDENT_KIND = "kdl_darts"


def drop_path(
    x: torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole samples of a branch with probability `prob`, rescaling the rest."""
    if prob <= 0.0:
        return x
    keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator) >= prob
    return x * keep / (1.0 - prob)


class DerivedCell(nn.Module):
    """A fixed cell: each intermediate node sums its genotype edges; output concat of `concat`."""

    def __init__(self, genotype: Genotype, slot: CellSlot) -> None:
        super().__init__()
        cell = genotype.reduce if slot.reduction else genotype.normal
        self.concat = genotype.reduce_concat if slot.reduction else genotype.normal_concat
        self.reduction = slot.reduction
        self.pre0, self.pre1 = make_preprocess(slot, affine=True)
        self.inputs = [[i for _, i in node] for node in cell]
        self.ops = nn.ModuleList(
            nn.ModuleList(
                make_op(op, slot.c, 2 if slot.reduction and i < 2 else 1) for op, i in node
            )
            for node in cell
        )
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """`[B, c_pp, H, W]`, `[B, c_p, H, W]` → `[B, len(concat)*c, H', W']`."""
        states = [self.pre0(s0), self.pre1(s1)]
        for inputs, ops in zip(self.inputs, self.ops):
            terms = []
            for i, op in zip(inputs, ops):
                h = op(states[i])
                if self.training and not isinstance(op, nn.Identity):
                    h = drop_path(h, self.drop_prob)
                terms.append(h)
            states.append(sum(terms))
        return torch.cat([states[i] for i in self.concat], dim=1)


class DerivedStudent(nn.Module):
    """Stem → derived cells → global pool → linear projection to D (`feature`) → `head`."""

    def __init__(self, genotype: Genotype, macro: Macro) -> None:
        super().__init__()
        if genotype.normal_concat != genotype.reduce_concat:
            raise ValueError("normal and reduction cells must concatenate the same node count")
        self.genotype, self.macro = genotype, macro
        self.stem = make_stem(macro)
        slots, c_out = cell_plan(macro, len(genotype.normal_concat))
        self.cells = nn.ModuleList(DerivedCell(genotype, s) for s in slots)
        self.project = nn.Linear(c_out, macro.feature_dim)
        self.head = nn.Linear(macro.feature_dim, macro.num_classes)

    def set_drop_path(self, prob: float) -> None:
        """Drop-path probability of every cell branch (0 disables; used while training only)."""
        for cell in self.cells:
            cell.drop_prob = prob

    def forward_feature(self, x: torch.Tensor) -> torch.Tensor:
        """`x float32 [B,C,H,W]` → `feature float32 [B, D]`."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.project(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x float32 [B,C,H,W]` → `(feature float32 [B, D], logits float32 [B, classes])`."""
        feature = self.forward_feature(x)
        return feature, self.head(feature)


def build_student(genotype: Genotype | Mapping[str, Any], **arch: Any) -> DerivedStudent:
    """The derived student of `genotype` (a Genotype or its dict); `arch` = fields of `Macro`
    (`in_channels, num_classes, feature_dim, init_channels, layers, stem_multiplier,
    stem_stride`), unknown names raise."""
    if not isinstance(genotype, Genotype):
        genotype = Genotype.from_dict(genotype)
    known = {f.name for f in fields(Macro)}
    unknown = set(arch) - known
    if unknown:
        raise TypeError(f"unknown student argument '{sorted(unknown)[0]}' (known: {sorted(known)})")
    return DerivedStudent(genotype, Macro(**arch))


def student_spec(genotype: Genotype, **arch: Any) -> dict[str, Any]:
    """Plain-data description (`kind`, `genotype`, `arch`) that `student_from_spec` rebuilds."""
    macro = Macro(**arch)
    return {"kind": STUDENT_KIND, "genotype": genotype.to_dict(), "arch": asdict(macro)}


def student_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a student from `student_spec(...)` (or `reference.hand_cnn_spec(...)`) output."""
    from rkdsc_core.nas.reference import HAND_CNN_KIND, HandCNN

    kind = spec.get("kind")
    if kind == STUDENT_KIND:
        return build_student(spec["genotype"], **spec["arch"])
    if kind == HAND_CNN_KIND:
        return HandCNN(**spec["arch"])
    raise ValueError(f"unknown student kind {kind!r} (known: {STUDENT_KIND}, {HAND_CNN_KIND})")
