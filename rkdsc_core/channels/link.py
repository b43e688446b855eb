"""One channel use end to end: fading + AWGN + receiver (perfect or pilot-estimated CSI, ZF/MMSE),
the `ChannelOutput` every channel returns, and the factory by name (`make_channel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rkdsc_core.channels._checks import check_scalar, check_symbols, per_sample, real_dtype
from rkdsc_core.channels.awgn import add_noise
from rkdsc_core.channels.equalize import mmse_equalize, zf_equalize
from rkdsc_core.channels.estimate import (
    interpolation_weights,
    lmmse_estimate,
    pilot_positions,
    pilot_symbols,
)
from rkdsc_core.channels.fading import CHANNELS, FadingModel
from rkdsc_core.channels.snr import noise_variance
from rkdsc_core.errors import check_choice

FADING_MODELS = CHANNELS  # the registry's earlier name (the registry lives in fading.py)


def list_channels() -> tuple[str, ...]:
    """The registered channel names, in registration order."""
    return CHANNELS.names()


CSI_MODES = ("perfect", "ls", "lmmse")
EQUALIZERS = ("zf", "mmse", "mmse_biased")


@dataclass
class ChannelOutput:
    """What one pass through a channel returns (B images of K data symbols).

    Attributes:
        symbols: complex [B, K], dtype of the input: equalised symbols for the CAT decoder.
        snr_db: float32 [B]: the Es/N0 the noise was drawn at.
        snr_eff_db: real [B, K] (float32 for complex64): effective per-symbol SNR in dB that the
            receiver reports,
            |h_hat|² / (N0 + err_var) (|h_hat|² / N0 for ZF).
        h: complex [B, K]: the true gains at the data symbols (1 for AWGN).
        h_hat: complex [B, K]: the receiver's CSI (equal to `h` for perfect CSI).
        y: complex [B, K]: received data symbols before equalisation.
        channel_index: int64 [B]: index into `channel_names` of each sample's channel.
        channel_names: the names `channel_index` refers to.
    """

    symbols: torch.Tensor
    snr_db: torch.Tensor
    snr_eff_db: torch.Tensor
    h: torch.Tensor
    h_hat: torch.Tensor
    y: torch.Tensor
    channel_index: torch.Tensor
    channel_names: tuple[str, ...]

    @property
    def channel(self) -> list[str]:
        """The channel name of each sample, length B."""
        return [self.channel_names[i] for i in self.channel_index.tolist()]


def make_fading(name: str, **params) -> FadingModel:
    """The fading model registered as `name`; `params` go to its constructor (unknown: raise)."""
    model = CHANNELS.get(name)  # an unknown name: UnknownNameError (a ValueError) listing them
    try:
        return model(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters {sorted(params)} for channel {name!r}: {exc}") from None


def check_receiver(csi: str, equalizer: str, num_pilots: int) -> int:
    """Validate receiver options; returns `num_pilots` as int."""
    check_choice("csi", csi, CSI_MODES)
    check_choice("equalizer", equalizer, EQUALIZERS)
    return int(check_scalar(num_pilots, "num_pilots", minimum=1))


def frame_length(num_symbols: int, csi: str, num_pilots: int) -> int:
    """Symbols per transmitted frame: K data symbols, plus `num_pilots` unless CSI is perfect."""
    return num_symbols if csi == "perfect" else num_symbols + num_pilots


def transmit(
    x: torch.Tensor,
    h_frame: torch.Tensor,
    snr_db: torch.Tensor,
    fd_ts: torch.Tensor,
    *,
    csi: str,
    equalizer: str,
    num_pilots: int,
    generator: torch.Generator | None,
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The vectorised link shared by `Channel` and `ChannelMix` (no per-sample Python).

    Args:
        x: complex [B, K] data symbols at unit power.
        h_frame: complex [B, N] gains over the whole frame (N = frame_length), or [B, 1].
        snr_db: float [B]; fd_ts: float [B] (the Doppler the LMMSE estimator assumes).
        noise: complex [B, N] unit CN(0, 1) noise over the frame drawn elsewhere, or None
            (drawn from `generator`).

    Returns:
        dict with the tensor fields of `ChannelOutput` except channel_index.
    """
    b, k = x.shape
    n0 = noise_variance(snr_db.double())
    h_frame = h_frame.to(x.dtype).expand(b, frame_length(k, csi, num_pilots))
    if csi == "perfect":
        y = add_noise(h_frame * x, n0, generator, noise)
        h, h_hat, err = h_frame, h_frame, 0.0
    else:
        pilot_idx, data_idx = (i.to(x.device) for i in pilot_positions(k, num_pilots))
        pilots = pilot_symbols(num_pilots, device=x.device, dtype=x.dtype)
        order = torch.argsort(torch.cat([data_idx, pilot_idx]))
        frame = torch.cat([x, pilots.expand(b, num_pilots)], dim=1)[:, order]
        y_frame = add_noise(h_frame * frame, n0, generator, noise)
        y, y_pilots, h = y_frame[:, data_idx], y_frame[:, pilot_idx], h_frame[:, data_idx]
        if csi == "ls":  # per-pilot LS, linearly interpolated; |p| = 1 so each has variance N0
            w = interpolation_weights(pilot_idx, data_idx).to(x.device)
            h_hat = (y_pilots / pilots) @ w.T.to(x.dtype)
            err = n0.unsqueeze(1) * w.square().sum(dim=1)
        else:
            h_hat, err = lmmse_estimate(y_pilots, pilots, pilot_idx, data_idx, n0, fd_ts)
        err = err.to(real_dtype(x.dtype))
    n0 = n0.to(real_dtype(x.dtype))
    if equalizer == "zf":
        x_hat, eff = zf_equalize(y, h_hat, n0)
    else:
        x_hat, eff = mmse_equalize(y, h_hat, n0, err, unbiased=equalizer == "mmse")
    return dict(symbols=x_hat, snr_eff_db=eff, h=h, h_hat=h_hat, y=y, snr_db=snr_db.float())


class Channel(nn.Module):
    """A fixed channel (one fading model) with its receiver; the SNR is given per call.

    `forward` = `generate` then `apply`; call them separately to reuse one draw of h (e.g. to run
    perfect and estimated CSI on the same channel).

    Args:
        fading: the fading model (see `make_channel` for construction by name).
        csi: "perfect" (genie), "ls" (per-pilot LS, linear interpolation) or "lmmse" (Wiener
            estimate with the model's Doppler as prior); the estimated modes send `num_pilots`
            unit-modulus pilots spread through the frame, at the same SNR.
        equalizer: "zf", "mmse" (unbiased, error-aware SNR) or "mmse_biased".
        num_pilots: pilots per image for estimated CSI.
    """

    def __init__(
        self,
        fading: FadingModel,
        *,
        csi: str = "perfect",
        equalizer: str = "mmse",
        num_pilots: int = 4,
    ) -> None:
        super().__init__()
        if not isinstance(fading, FadingModel):
            raise ValueError(f"fading must be a FadingModel, got {type(fading).__name__}")
        self.fading = fading
        self.num_pilots = check_receiver(csi, equalizer, num_pilots)
        self.csi, self.equalizer = csi, equalizer

    @property
    def name(self) -> str:
        """The registry name of the fading model."""
        return self.fading.name

    def frame_length(self, num_symbols: int) -> int:
        """Symbols per transmitted frame for `num_symbols` data symbols (pilots included)."""
        return frame_length(num_symbols, self.csi, self.num_pilots)

    def generate(self, batch_size: int, num_symbols: int, **kwargs) -> torch.Tensor:
        """Draw h for whole frames: complex [batch_size, frame_length(num_symbols)]; `kwargs`
        (generator, device, dtype) as `FadingModel.generate`."""
        n = self.frame_length(int(check_scalar(num_symbols, "num_symbols", minimum=1)))
        return self.fading.generate(batch_size, n, **kwargs)

    def apply(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        snr_db: float | torch.Tensor,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> ChannelOutput:
        """Send `x` through the given channel draw `h`, add noise, equalise.

        Args:
            x: complex64/complex128 [B, K] at unit average power per image.
            h: complex [B, frame_length(K)] from `generate`, or [B, 1] (one gain per image).
            snr_db: Es/N0 in dB, a float or [B] (+inf: noiseless).
            generator: optional torch.Generator for the noise.
            noise: complex [B, frame_length(K)] unit CN(0, 1) noise drawn elsewhere (the keyed
                draws of `channels.draws`); give it or `generator`, not both.
        """
        if noise is not None and generator is not None:
            raise ValueError("give the noise or a generator to draw it, not both")
        check_symbols(x)
        check_symbols(h, "h")
        n = self.frame_length(x.shape[1])
        if h.shape[0] != x.shape[0] or h.shape[1] not in (1, n):
            raise ValueError(f"h must have shape [{x.shape[0]}, {n} or 1], got {tuple(h.shape)}")
        b = x.shape[0]
        snr = per_sample(snr_db, b, "snr_db", device=x.device, allow_pos_inf=True)
        fd = torch.full((b,), self.fading.fd_ts, device=x.device, dtype=torch.float64)
        opts = dict(csi=self.csi, equalizer=self.equalizer, num_pilots=self.num_pilots)
        out = transmit(x, h.to(x.device), snr, fd, generator=generator, noise=noise, **opts)
        index = torch.zeros(b, dtype=torch.int64, device=x.device)
        return ChannelOutput(channel_index=index, channel_names=(self.name,), **out)

    def forward(
        self,
        x: torch.Tensor,
        snr_db: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> ChannelOutput:
        """Draw a channel and apply it: see `apply` for the arguments; h is in the output."""
        check_symbols(x)
        h = self.generate(*x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return self.apply(x, h, snr_db, generator)

    def extra_repr(self) -> str:
        return f"csi={self.csi!r}, equalizer={self.equalizer!r}, num_pilots={self.num_pilots}"


def make_channel(
    name: str,
    *,
    csi: str = "perfect",
    equalizer: str = "mmse",
    num_pilots: int = 4,
    **fading_params,
) -> Channel:
    """The channel registered as `name` ("awgn", "rayleigh", "rayleigh_fast", "rician").

    `fading_params` go to the fading model: `k_factor`, `los_phase` (rician), `fd_ts`,
    `num_sinusoids` (rayleigh_fast); a parameter the model does not take raises ValueError.
    Example: `make_channel("rician", k_factor=4.0)(x, snr_db=10.0, generator=g).symbols`.
    """
    fading = make_fading(name, **fading_params)
    return Channel(fading, csi=csi, equalizer=equalizer, num_pilots=num_pilots)
