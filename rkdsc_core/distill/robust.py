"""Stage 2 of RKD-SC: robust KD of the CAT codec and head through a channel mix (PAPER.md §4–5).

Per batch each sample draws a channel, an SNR and a rate K from the rate set; the encoder's symbols
are truncated to K (nested rates), sent through the differentiable channel with equalisation, and
decoded with the per-symbol effective SNR. Loss = w_f·MSE(ẑ, z_teacher) + w_ce·CE + w_kl·KL(T).
"""

from __future__ import annotations

import torch
from torch import nn

from rkdsc_core.codec.cat import CATCodec
from rkdsc_core.distill.losses import KDWeights, kd_objective


class RobustDistiller(nn.Module):
    """CAT + head trained through `mix`; `forward_train` returns named, weighted losses."""

    def __init__(
        self, cat: CATCodec, head: nn.Linear, mix, weights: KDWeights, p_snr_unknown: float = 0.2
    ) -> None:
        super().__init__()
        self.cat = cat
        self.head = head
        self.mix = mix
        self.weights = weights
        self.p_snr_unknown = p_snr_unknown  # share of samples whose encoder is not told the SNR

    def forward_train(
        self,
        feature: torch.Tensor,
        z_teacher: torch.Tensor,
        logits_teacher: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """feature float [B, D] (student), z_teacher [B, D], logits_teacher [B, C], labels [B]."""
        b, dev = feature.shape[0], feature.device
        rates = torch.tensor(self.cat.cfg.rates)
        k = rates[torch.randint(len(rates), (b,), generator=generator)].to(dev)
        snr = self.mix.sample_snr(b, generator=generator).to(dev)
        unknown = torch.rand(b, generator=generator).to(dev) < self.p_snr_unknown
        x = self.cat.encode(feature, k, torch.where(unknown, torch.nan, snr))
        out = self.mix(x, snr, generator=generator)
        mask = self.cat.rate_mask(k, self.cat.cfg.k_max)
        z_hat = self.cat.decode(out.symbols, out.snr_eff_db, mask)
        logits = self.head(z_hat)
        terms = kd_objective(z_hat, logits, labels, z_teacher, logits_teacher, self.weights)
        terms["acc"] = (logits.argmax(1) == labels).float().mean().detach()
        return terms
