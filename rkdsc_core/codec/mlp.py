"""An MLP channel codec with the CAT's interface, for the CAT's ablation (issue 19, item 6): the
same inputs (feature + SNR at the encoder, equalised symbols + per-symbol SNR at the decoder),
nested rates and power normalisation, with dense layers in place of the transformers."""

from __future__ import annotations

import math

import torch
from torch import nn

from rkdsc_core.codec.cat import CATCodec, CATConfig, snr_input


def _one_hidden(n_in: int, n_out: int, params: int) -> int:
    """Hidden width h of Linear(n_in, h) → Linear(h, n_out) with about `params` parameters."""
    return max(1, round((params - n_out) / (n_in + 1 + n_out)))


def _two_hidden(n_in: int, n_out: int, params: int) -> int:
    """Hidden width h of Linear(n_in, h) → Linear(h, h) → Linear(h, n_out) with ~`params`."""
    b = n_in + 1 + 1 + 1 + n_out  # h² + (n_in + n_out + 2)·h + n_out = params
    return max(1, round((-b + math.sqrt(b * b + 4 * (params - n_out))) / 2))


class MLPEncoder(nn.Module):
    """feature float [B, D], snr_db float [B] (NaN: unknown) → raw symbols complex64 [B, K_max].
    The SNR enters as (scaled SNR, known flag), 0 and 0 when unknown."""

    def __init__(self, cfg: CATConfig, hidden: int) -> None:
        super().__init__()
        self.k_max = cfg.k_max
        self.net = nn.Sequential(
            nn.Linear(cfg.feature_dim + 2, hidden), nn.GELU(), nn.Linear(hidden, 2 * cfg.k_max)
        )

    def forward(self, feature: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
        known = torch.isfinite(snr_db)
        snr = torch.where(known, snr_input(torch.nan_to_num(snr_db)), 0.0)
        z = self.net(torch.cat([feature, snr.unsqueeze(1), known.float().unsqueeze(1)], 1))
        z = z.view(-1, self.k_max, 2)
        return torch.complex(z[..., 0], z[..., 1])


class MLPDecoder(nn.Module):
    """Equalised symbols complex [B, K_max] (zeros past k), per-symbol SNR dB [B, K_max], mask
    bool [B, K_max] → feature float [B, D]; reads (re, im, scaled SNR, received) per symbol."""

    def __init__(self, cfg: CATConfig, hidden: int) -> None:
        super().__init__()
        self.k_max = cfg.k_max
        self.net = nn.Sequential(
            nn.Linear(4 * cfg.k_max, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, cfg.feature_dim),
        )

    def forward(self, y: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pad = self.k_max - y.shape[1]  # decode_received hands over the k received symbols only
        parts = [y.real, y.imag, snr_input(snr_db), mask.float()]
        x = torch.cat([nn.functional.pad(p * mask, (0, pad)) for p in parts], 1)
        return self.net(x)


class MLPCodec(CATCodec):
    """The CAT codec's rate logic (`encode`, `decode`, `decode_received`, `rate_mask`) around an
    MLP encoder and decoder sized to `encoder_params` and `decoder_params` (e.g. the CAT's)."""

    def __init__(self, cfg: CATConfig, encoder_params: int, decoder_params: int) -> None:
        nn.Module.__init__(self)
        self.cfg = cfg
        enc_h = _one_hidden(cfg.feature_dim + 2, 2 * cfg.k_max, encoder_params)
        dec_h = _two_hidden(4 * cfg.k_max, cfg.feature_dim, decoder_params)
        self.encoder = MLPEncoder(cfg, enc_h)
        self.decoder = MLPDecoder(cfg, dec_h)
