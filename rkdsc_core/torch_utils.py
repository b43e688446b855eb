"""Small torch helpers with no project imports, so any module may use them without a cycle."""

from __future__ import annotations

import torch
from torch import nn


def count_params(module: nn.Module) -> int:
    """Trainable and non-trainable parameters (BN running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state dict as detached, contiguous CPU tensors: what safetensors files hold,
    whatever device the module trained on."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
