"""DeepJSCC-CNN, the learned baseline with no teacher and no CAT: a small CNN encoder to K complex
symbols and an MLP decoder-classifier on the equalised symbols (with `snr_input`, each symbol's
effective SNR beside it, as the CAT decoder reads them). Trained by
`rkdsc_core.eval.learned_baselines` (or the pipeline's baselines stage); rebuilt from its bundle
spec by `rkdsc_core.bundle`."""

from __future__ import annotations

import torch
from torch import nn

from rkdsc_core.channels import normalize_power
from rkdsc_core.codec.cat import snr_input as scaled_snr


class DeepJsccCnn(nn.Module):
    """CNN encoder → K complex symbols; MLP decoder on the equalised symbols → logits.

    `snr_input=True` gives the decoder the per-symbol effective SNR (scaled as the CAT decoder's,
    issue 19's equal terms); False is the original decoder (bundles trained before it)."""

    def __init__(
        self, in_channels: int, rate: int, num_classes: int, width: int = 32, snr_input=False
    ) -> None:
        super().__init__()
        self.rate = rate
        self.snr_input = bool(snr_input)
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
            nn.Linear((3 if self.snr_input else 2) * rate, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """float [B, C, H, W] → complex64 [B, K] at unit average power per image."""
        z = self.encoder(x).view(-1, self.rate, 2)
        return normalize_power(torch.complex(z[..., 0], z[..., 1]))

    def decode(self, y: torch.Tensor, snr_db: torch.Tensor | None = None) -> torch.Tensor:
        """complex [B, K] equalised symbols (+ their effective SNR in dB, float [B, K] or [B],
        when built with `snr_input`) → logits [B, num_classes]."""
        parts = [y.real, y.imag]
        if self.snr_input:
            if snr_db is None:
                raise ValueError("this DeepJSCC-CNN decoder reads the per-symbol SNR: pass snr_db")
            snr = snr_db if snr_db.ndim == 2 else snr_db.unsqueeze(1).expand(y.shape)
            parts.append(scaled_snr(snr.float()))
        return self.decoder(torch.cat(parts, 1))
