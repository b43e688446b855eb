"""Helpers shared by the core tests (imported by name: tests/core is on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "rkdsc_train" / "configs" / "smoke.yaml")


def smoke_train_cmd(out: Path, *args: str, launcher: tuple[str, ...] = (sys.executable,)) -> list:
    """`rkdsc train` on the smoke config with `args`, writing the run and its feature store under
    `out`, started by `launcher` (the Python, or torchrun)."""
    cmd = [*launcher, "-m", "rkdsc.cli", "train", "--config", SMOKE, *args]
    return [*cmd, f"out_dir={out}", f"store.root={out / 'store'}"]


def gen(seed: int):
    """A CPU `torch.Generator` seeded with `seed`."""
    import torch

    return torch.Generator().manual_seed(seed)


def tiny_genotype():
    """A two-node `Genotype` over the DARTS primitives, for tests that build students."""
    from rkdsc_core.nas.genotype import Genotype
    from rkdsc_core.nas.primitives import DARTS_PRIMITIVES

    return Genotype(
        primitives=DARTS_PRIMITIVES,
        normal=(
            (("sep_conv_3x3", 0), ("skip_connect", 1)),
            (("dil_conv_5x5", 2), ("max_pool_3x3", 0)),
        ),
        normal_concat=(2, 3),
        reduce=(
            (("avg_pool_3x3", 0), ("sep_conv_5x5", 1)),
            (("skip_connect", 2), ("dil_conv_3x3", 1)),
        ),
        reduce_concat=(2, 3),
    )
