"""DeepJSCC-CNN, the learned baseline with no teacher and no CAT: a small CNN encoder to K complex
symbols and an MLP decoder-classifier on the equalised symbols. Trained by
`rkdsc_core.eval.learned_baselines` (or the pipeline's baselines stage); rebuilt from its bundle
spec by `rkdsc_core.bundle`."""

from __future__ import annotations

import torch
from torch import nn

from rkdsc_core.channels import normalize_power


class DeepJsccCnn(nn.Module):
    """CNN encoder → K complex symbols; MLP decoder on the equalised symbols → logits."""

    def __init__(self, in_channels: int, rate: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.rate = rate
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, width // 2, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width // 2, width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 2 * rate),
        )
        self.decoder = nn.Sequential(
            nn.Linear(2 * rate, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """float [B, C, H, W] → complex64 [B, K] at unit average power per image."""
        z = self.encoder(x).view(-1, self.rate, 2)
        return normalize_power(torch.complex(z[..., 0], z[..., 1]))

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """complex [B, K] → logits [B, num_classes]."""
        return self.decoder(torch.cat([y.real, y.imag], 1))
