"""A hand-designed CNN student: the non-searched reference of the KDL-DARTS ablation.

Same contract as the derived student: `forward(x float32 [B,C,H,W]) -> (feature float32 [B, D],
logits float32 [B, num_classes])`, `logits = head(feature)`, rebuilt from plain data
(`hand_cnn_spec` / `student_from_spec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

HAND_CNN_KIND = "hand_cnn"


def conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class HandCNN(nn.Module):
    """3×3 conv-BN-ReLU stages (stride 2 at the start of each), global pool, projection, head.

    `widths[i]` channels and `depth` convs per stage; three stages map 28×28 → 14 → 7 → 4."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        feature_dim: int = 64,
        widths: Sequence[int] = (16, 32, 64),
        depth: int = 2,
    ) -> None:
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers.append(conv_bn_relu(c, w, 2))
            layers.extend(conv_bn_relu(w, w, 1) for _ in range(depth - 1))
            c = w
        self.body = nn.Sequential(*layers)
        self.project = nn.Linear(c, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x float32 [B,C,H,W]` → `(feature float32 [B, D], logits float32 [B, classes])`."""
        feature = self.project(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))
        return feature, self.head(feature)


def hand_cnn_spec(**arch: Any) -> dict[str, Any]:
    """Plain-data spec (`kind`, `arch`) of a HandCNN; `widths` stored as a list."""
    arch = dict(arch)
    if "widths" in arch:
        arch["widths"] = [int(w) for w in arch["widths"]]
    HandCNN(**arch)  # validate the arguments now, not when the manifest is read
    return {"kind": HAND_CNN_KIND, "arch": arch}
