"""The training channel mix (PAPER.md §4, stage 2): each sample draws a channel and an SNR.

`ChannelMix.from_config(cfg.stage2.channel)(x, generator=g)` is the one call stage 2 makes per
batch; it is vectorised over the batch (one Python step per channel type, none per sample).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from rkdsc_core.channels._checks import check_scalar, check_symbols, per_sample
from rkdsc_core.channels.fading import DEFAULT_FD_TS, DEFAULT_K_FACTOR
from rkdsc_core.channels.link import (
    CHANNELS,
    ChannelOutput,
    check_receiver,
    frame_length,
    make_fading,
    transmit,
)
from rkdsc_core.registry import UnknownNameError

if TYPE_CHECKING:
    from rkdsc_core.config import ChannelMixConfig

logger = logging.getLogger(__name__)


class ChannelMix(nn.Module):
    """A random channel per sample: name ~ Categorical(weights), SNR ~ U[snr_min_db, snr_max_db].

    Args:
        channels: names from the `CHANNELS` registry ("awgn", "rayleigh", "rayleigh_fast",
            "rician"), no repeats.
        weights: relative probabilities, one per channel, >= 0 with a positive sum; None = uniform.
        snr_min_db, snr_max_db: Es/N0 range in dB (equal bounds give a fixed SNR).
        rician_k: K-factor of "rician" (>= 0).
        fd_ts: normalised Doppler f_D·T_s of "rayleigh_fast" (0…0.5).
        csi, equalizer, num_pilots: the receiver, as in `Channel`.
    """

    def __init__(
        self,
        channels: Sequence[str] = ("awgn", "rayleigh"),
        weights: Sequence[float] | None = None,
        snr_min_db: float = -10.0,
        snr_max_db: float = 20.0,
        *,
        rician_k: float = DEFAULT_K_FACTOR,
        fd_ts: float = DEFAULT_FD_TS,
        csi: str = "perfect",
        equalizer: str = "mmse",
        num_pilots: int = 4,
    ) -> None:
        super().__init__()
        names = tuple(channels) if not isinstance(channels, str) else (channels,)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"channels must be a non-empty list without repeats, got {channels!r}")
        for name in names:
            if name not in CHANNELS:  # a ValueError that lists the names
                raise UnknownNameError(f"channels: {CHANNELS.unknown(name)}")
        self.channel_names = names
        self.probs = self._probabilities(weights, len(names))
        self.snr_min_db = check_scalar(snr_min_db, "snr_min_db")
        self.snr_max_db = check_scalar(snr_max_db, "snr_max_db")
        if self.snr_max_db < self.snr_min_db:
            raise ValueError(f"snr_max_db ({snr_max_db}) must be >= snr_min_db ({snr_min_db})")
        self.rician_k = check_scalar(rician_k, "rician_k", minimum=0.0)
        self.fd_ts = check_scalar(fd_ts, "fd_ts", minimum=0.0)
        params: dict[str, dict[str, float]] = {
            "rician": {"k_factor": self.rician_k},
            "rayleigh_fast": {"fd_ts": self.fd_ts},
        }
        self.models = nn.ModuleList(make_fading(n, **params.get(n, {})) for n in names)
        self.num_pilots = check_receiver(csi, equalizer, num_pilots)
        self.csi, self.equalizer = csi, equalizer
        logger.debug("channel mix: %s", self.as_dict())

    @staticmethod
    def _probabilities(weights: Sequence[float] | None, n: int) -> list[float]:
        if weights is None:
            return [1.0 / n] * n
        w = [check_scalar(v, "weights", minimum=0.0) for v in weights]
        if len(w) != n or sum(w) <= 0:
            raise ValueError(f"weights must hold {n} values >= 0, positive sum, got {weights}")
        return [v / sum(w) for v in w]

    @classmethod
    def from_config(cls, cfg: ChannelMixConfig) -> ChannelMix:
        """Build from `rkdsc_core.config.ChannelMixConfig` (e.g. `cfg.stage2.channel`): its
        fields are this constructor's arguments."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cfg)})

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (for a bundle manifest)."""
        return {
            "channels": list(self.channel_names),
            "weights": list(self.probs),
            "snr_min_db": self.snr_min_db,
            "snr_max_db": self.snr_max_db,
            "rician_k": self.rician_k,
            "fd_ts": self.fd_ts,
            "csi": self.csi,
            "equalizer": self.equalizer,
            "num_pilots": self.num_pilots,
        }

    def sample(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (channel_index int64 [B], snr_db float32 [B]) on `device`."""
        gen_device = generator.device if generator is not None else torch.device(device)
        probs = torch.tensor(self.probs, device=gen_device)
        index = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        u = torch.rand(batch_size, generator=generator, device=gen_device)
        snr = self.snr_min_db + (self.snr_max_db - self.snr_min_db) * u
        return index.to(device), snr.to(device)

    def sample_snr(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Draw SNRs only: float32 [B] ~ U[snr_min_db, snr_max_db] (e.g. to tell the encoder)."""
        return self.sample(batch_size, generator=generator, device=device)[1]

    def forward(
        self,
        x: torch.Tensor,
        snr_db: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ChannelOutput:
        """Send each image through its own randomly drawn channel and SNR, then equalise.

        Args:
            x: complex64/complex128 [B, K] symbols at unit average power per image.
            snr_db: None draws one SNR per sample from the range; a float or [B] tensor fixes it
                (e.g. the SNR already drawn with `sample_snr` and given to the encoder). The
                range draw still happens, so a seeded run consumes the same random numbers.
            generator: optional torch.Generator (CPU or x's device) for every draw.

        Returns:
            `ChannelOutput`: symbols (equalised) complex [B, K]; snr_db float32 [B]; snr_eff_db
            real [B, K]; h, h_hat, y complex [B, K]; channel_index int64 [B] into
            `channel_names` (`.channel` gives the names as a list).
        """
        check_symbols(x)
        b, k = x.shape
        index, snr = self.sample(b, generator=generator, device=x.device)
        if snr_db is not None:
            snr = per_sample(snr_db, b, "snr_db", device=x.device, allow_pos_inf=True)
        n = frame_length(k, self.csi, self.num_pilots)
        h_frame = torch.empty((b, n), dtype=x.dtype, device=x.device)
        for c, model in enumerate(self.models):
            rows = torch.nonzero(index == c).squeeze(1)
            if rows.numel():
                h_frame[rows] = model.generate(
                    rows.numel(), n, generator=generator, device=x.device, dtype=x.dtype
                )
        fd_table = torch.tensor([m.fd_ts for m in self.models], dtype=torch.float64)
        fd = fd_table.to(x.device)[index]
        opts = dict(csi=self.csi, equalizer=self.equalizer, num_pilots=self.num_pilots)
        out = transmit(x, h_frame, snr, fd, generator=generator, **opts)
        return ChannelOutput(channel_index=index, channel_names=self.channel_names, **out)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "channels")


__all__ = ["ChannelMix"]
