"""Learned baselines of issue 11 that need no teacher: DeepJSCC-CNN.

`deepjscc_cnn` trains a small CNN encoder + MLP decoder-classifier end-to-end through the bundle's
own training channel mix (channels and SNR range from the manifest) at K symbols, with a short,
reported step budget, then measures accuracy vs SNR through the same evaluation channel as RKD-SC.
Images uint8 [N, H, W, C] → normalised [N, C, H, W] → 2K reals → K complex symbols (unit average
power per image) → channel (perfect-CSI MMSE equalisation) → logits [N, C].
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from rkdsc_core.bundle import count_params
from rkdsc_core.channels import ChannelMix, make_channel, normalize_power
from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.runtime import Bundle

log = logging.getLogger(__name__)


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


def deepjscc_cnn(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    steps: int = 600,
    batch_size: int = 128,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Train DeepJSCC-CNN for `steps` Adam steps on `train`, then sweep `snrs` on `data`."""
    torch.manual_seed(seed)
    mix_cfg = bundle.manifest.get("training", {}).get("channel_mix", {})
    mix = ChannelMix(
        mix_cfg.get("channels", ["awgn", "rayleigh"]),
        mix_cfg.get("weights"),
        float(mix_cfg.get("snr_min_db", -10.0)),
        float(mix_cfg.get("snr_max_db", 20.0)),
    )
    h, w, c = bundle.image_shape
    model = DeepJsccCnn(c, rate, len(bundle.classes))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(train.labels.astype(np.int64))
    t0 = time.time()
    model.train()
    for step in range(steps):
        idx = rng.integers(0, len(train), batch_size)
        x = to_tensor(train.images[idx], bundle.norm)
        out = mix(model.encode(x), generator=gen)
        loss = nn.functional.cross_entropy(model.decode(out.symbols), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 200 == 0:
            log.info("deepjscc-cnn step %d loss %.3f", step, float(loss.detach()))
    train_s = time.time() - t0
    model.eval()
    ch = make_channel(channel)
    gen = torch.Generator().manual_seed(seed + 1)
    pts = []
    with torch.inference_mode():
        sym = torch.cat(
            [
                model.encode(to_tensor(data.images[i : i + 500], bundle.norm))
                for i in range(0, len(data), 500)
            ]
        )
        for s in snrs:
            out = ch(sym, torch.full((len(sym),), float(s)), generator=gen)
            pred = model.decode(out.symbols).argmax(1).numpy()
            pts.append({"snr_db": float(s), "accuracy": float((pred == data.labels).mean())})
    info = {
        "channel_uses": rate,
        "params": count_params(model),
        "train_steps": steps,
        "batch_size": batch_size,
        "train_images": len(train),
        "train_seconds": round(train_s, 1),
        "train_channel_mix": dict(mix_cfg) if mix_cfg else "awgn+rayleigh, -10..20 dB",
        "note": "short budget: a lower bound on what this architecture reaches",
    }
    return pts, info
