"""DARTS primitive operations (PAPER.md §3): the candidate ops of one edge, built by name.

`OPS` maps a name to a factory `(C, stride, affine) -> nn.Module`; every op maps
`float32 [B, C, H, W]` to `float32 [B, C, ceil(H/stride), ceil(W/stride)]`. The registry is a
lookup table only: the *order* of candidate ops lives in the search space and in the genotype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rkdsc_core.registry import Registry

OpFactory = Callable[[int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU → Conv(k, stride) → BN: the 1×1 cell preprocessing and the stem of a conv op."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise dilated conv → pointwise conv → BN."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked (ReLU → depthwise → pointwise → BN) blocks; the first carries the stride."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class Zero(nn.Module):
    """The `none` op: zeros of the output shape (it lets DARTS learn to drop an edge)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve H and W with two offset stride-2 1×1 convs (odd sizes padded, so 7×7 → 4×4)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _skip(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)


OPS: Registry[OpFactory] = Registry(
    "op",
    {
        "none": lambda c, stride, affine: Zero(stride),
        "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(
            3, stride=stride, padding=1, count_include_pad=False
        ),
        "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
        "skip_connect": _skip,
        "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
        "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
        "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
        "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    },
)


def list_ops() -> tuple[str, ...]:
    """The registered primitive names (lookup only: the search space fixes their order)."""
    return OPS.names()


def make_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """Instantiate primitive `name` on `c` channels; unknown names raise naming the choices."""
    return OPS.get(name)(c, stride, affine)  # an unknown name: a ValueError listing them


def is_pool(name: str) -> bool:
    """Pooling ops get a BN (affine=False) inside the search's mixed op, as in DARTS."""
    return "pool" in name
