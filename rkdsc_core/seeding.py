"""The one seeding helper: scripts seed once; stochastic modules take explicit generators."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a torch Generator seeded with `seed`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def numpy_rng(seed: int | None = None) -> np.random.Generator:
    """A numpy Generator (PCG64) for numpy-side stochastic code."""
    return np.random.default_rng(seed)
