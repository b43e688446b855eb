"""Tensor conversion and normalisation at the numpy→torch boundary, and light augmentation.

`uint8 [B,H,W,C]` images become `float32 [B,C,H,W]` normalised with the dataset's mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Per-channel statistics of the training splits (computed once; see tests/core/test_data.py).
NORMALISATION = {
    "fmnist": ((0.2860,), (0.3530,)),
    "fmnist_subset": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std for images scaled to [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_dataset(cls, name: str) -> Normalisation:
        mean, std = NORMALISATION[name]
        return cls(tuple(mean), tuple(std))


def to_tensor(images: np.ndarray | torch.Tensor, norm: Normalisation) -> torch.Tensor:
    """`uint8 [B,H,W,C]` → `float32 [B,C,H,W]`, scaled to [0,1] then normalised."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"images must be uint8 [B,H,W,C], got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(norm.mean).view(1, -1, 1, 1)
    std = torch.tensor(norm.std).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def map_images(
    fn, images: np.ndarray, norm: Normalisation, batch_size: int = 500, device="cpu"
) -> torch.Tensor:
    """`fn` (normalised float [B, C, H, W] on `device` → tensor [B, ...]) over uint8 images
    [N, H, W, C] in batches, without gradients; the outputs concatenated on the CPU, [N, ...]."""
    return torch.cat(
        [
            fn(to_tensor(images[i : i + batch_size], norm).to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def random_crop_flip(
    x: torch.Tensor, pad: int = 2, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Batch augmentation on `float [B,C,H,W]`: random shift by up to `pad` px, optional h-flip."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1, 1), generator=generator)
    rows = (dy + torch.arange(h).view(1, 1, h, 1)).expand(b, c, h, w + 2 * pad)
    out = torch.gather(padded, 2, rows)
    cols = (dx + torch.arange(w).view(1, 1, 1, w)).expand(b, c, h, w)
    out = torch.gather(out, 3, cols)
    if flip:
        mask = torch.rand(b, generator=generator) < 0.5
        out[mask] = out[mask].flip(-1)
    return out
