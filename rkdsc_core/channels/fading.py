"""Flat-fading channel generators (the Generate half of Generate / Apply) and the Apply half.

Rayleigh h ~ CN(0, 1): block fading (one h per image) or time-varying (Jakes/Clarke Doppler
spectrum, one h per symbol); Rician block fading with K-factor. All have E|h|² = 1 (DESIGN.md §3).
`CHANNELS`, the channel registry, lists them by name at the end of this file.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rkdsc_core.channels._checks import (
    COMPLEX_DTYPES,
    check_scalar,
    check_symbols,
    per_sample,
    real_dtype,
    uniform,
)
from rkdsc_core.channels.awgn import add_noise, complex_normal
from rkdsc_core.channels.snr import noise_variance
from rkdsc_core.registry import Registry

#: Defaults shared with `ChannelMixConfig` (rician_k, fd_ts).
DEFAULT_K_FACTOR = 4.0
DEFAULT_FD_TS = 0.01


class FadingModel(nn.Module):
    """Base class: `generate(B, N)` draws one complex gain per symbol, shape [B, N].

    Attributes:
        name: registry name of the model.
        fd_ts: normalised maximum Doppler f_D·T_s the receiver's LMMSE estimator assumes
            (0 for block fading: h is constant within an image).
    """

    name: str = "fading"
    fd_ts: float = 0.0
    #: standard draws per image that `gains` maps to h: CN(0, 1) values, U[0, 1) values
    num_normals: int = 0
    num_uniforms: int = 0

    def generate(
        self,
        batch_size: int,
        num_symbols: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.complex64,
    ) -> torch.Tensor:
        """Draw channel gains h, complex `dtype` [batch_size, num_symbols] on `device`."""
        batch_size = int(check_scalar(batch_size, "batch_size", minimum=1))
        num_symbols = int(check_scalar(num_symbols, "num_symbols", minimum=1))
        if dtype not in COMPLEX_DTYPES:
            raise ValueError(f"dtype must be complex64 or complex128, got {dtype}")
        return self._draw(batch_size, num_symbols, generator, torch.device(device), dtype)

    def forward(self, batch_size: int, num_symbols: int, **kwargs) -> torch.Tensor:
        """Same as `generate`."""
        return self.generate(batch_size, num_symbols, **kwargs)

    def gains(self, normals: torch.Tensor, uniforms: torch.Tensor, n: int) -> torch.Tensor:
        """Map standard draws to gains, so that any random source can drive the model (the keyed
        draws of `channels.draws` as well as a torch Generator).

        Args:
            normals: complex [B, num_normals] CN(0, 1) draws; its dtype is h's dtype.
            uniforms: float64 (or the real dtype of h) [B, num_uniforms] U[0, 1) draws.
            n: symbols per image.

        Returns:
            complex [B, n] gains, dtype of `normals`.
        """
        raise NotImplementedError

    def _draw(
        self,
        b: int,
        n: int,
        generator: torch.Generator | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """complex `dtype` [b, n] gains on `device`, from `generator`."""
        normals = complex_normal(
            (b, self.num_normals), generator=generator, device=device, dtype=dtype
        )
        uniforms = uniform(
            (b, self.num_uniforms),
            generator=generator,
            device=device,
            dtype=self._uniform_dtype(dtype),
        )
        return self.gains(normals, uniforms, n)

    def _uniform_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return real_dtype(dtype)


class NoFading(FadingModel):
    """h = 1 everywhere: the AWGN channel."""

    name = "awgn"

    def gains(self, normals, uniforms, n):
        return torch.ones((normals.shape[0], n), device=normals.device, dtype=normals.dtype)


class RayleighBlockFading(FadingModel):
    """One h ~ CN(0, 1) per image, held for all its symbols."""

    name = "rayleigh"
    num_normals = 1

    def gains(self, normals, uniforms, n):
        return normals[:, :1].expand(normals.shape[0], n).contiguous()


class RicianBlockFading(FadingModel):
    """One h per image: h = sqrt(K/(K+1))·e^{jθ} + sqrt(1/(K+1))·CN(0, 1), so E|h|² = 1.

    Args:
        k_factor: K = LOS power / scattered power, >= 0 (0 is Rayleigh).
        los_phase: θ in radians; None draws θ ~ U[0, 2π) per image (the receiver's phase
            reference is arbitrary).
    """

    name = "rician"
    num_normals = 1

    def __init__(self, k_factor: float = DEFAULT_K_FACTOR, los_phase: float | None = None) -> None:
        super().__init__()
        self.k_factor = check_scalar(k_factor, "k_factor", minimum=0.0)
        self.los_phase = None if los_phase is None else check_scalar(los_phase, "los_phase")
        self.num_uniforms = 1 if self.los_phase is None else 0  # the LOS phase, when drawn

    def gains(self, normals, uniforms, n):
        k, b = self.k_factor, normals.shape[0]
        real = real_dtype(normals.dtype)
        if self.los_phase is None:
            theta = 2 * math.pi * uniforms[:, :1].to(real)
        else:
            theta = torch.full((b, 1), self.los_phase, device=normals.device, dtype=real)
        los = torch.polar(torch.full_like(theta, math.sqrt(k / (k + 1))), theta)
        return (los + math.sqrt(1 / (k + 1)) * normals[:, :1]).expand(b, n).contiguous()

    def extra_repr(self) -> str:
        return f"k_factor={self.k_factor}, los_phase={self.los_phase}"


def _unit_phasor(phase: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """e^{j·phase} as complex `dtype` (phase is float64, reduced mod 2π before narrowing)."""
    phase = torch.remainder(phase, 2 * math.pi).to(real_dtype(dtype))
    return torch.polar(torch.ones_like(phase), phase)


class RayleighTimeVarying(FadingModel):
    """Rayleigh fading varying per symbol with the Clarke/Jakes Doppler spectrum.

    Sum of `num_sinusoids` complex sinusoids with independent phases, whose angles of arrival are
    stratified over the circle (one uniform draw per arc of 2π/M), so that the ensemble
    autocorrelation is exactly E[h[n] h*[n+τ]] = J0(2π·fd_ts·τ) for any M and the pseudo-covariance
    is 0; the marginal tends to CN(0, 1) as M grows.

    Args:
        fd_ts: normalised maximum Doppler f_D·T_s in cycles per symbol, in [0, 0.5].
        num_sinusoids: M, >= 8.
    """

    name = "rayleigh_fast"

    def __init__(self, fd_ts: float = DEFAULT_FD_TS, num_sinusoids: int = 64) -> None:
        super().__init__()
        self.fd_ts = check_scalar(fd_ts, "fd_ts", minimum=0.0)
        if self.fd_ts > 0.5:
            raise ValueError(f"fd_ts must be <= 0.5 cycles per symbol, got {fd_ts!r}")
        self.num_sinusoids = int(check_scalar(num_sinusoids, "num_sinusoids", minimum=8))
        self.num_uniforms = 2 * self.num_sinusoids  # per sinusoid: angle within its arc, phase

    def _uniform_dtype(self, dtype):
        return torch.float64  # phases of up to 2π·fd·N rad need double precision

    def gains(self, normals, uniforms, n):
        m, b, device, dtype = self.num_sinusoids, normals.shape[0], normals.device, normals.dtype
        f64 = torch.float64
        arc = uniforms.to(f64).view(b, m, 2)
        alpha = 2 * math.pi * (torch.arange(m, device=device, dtype=f64) + arc[..., 0]) / m
        phi = 2 * math.pi * arc[..., 1]
        omega = 2 * math.pi * self.fd_ts * torch.cos(alpha)  # [b, m] rad/symbol
        # e^{jω(qS + r)} = e^{jωqS}·e^{jωr}: two small exp tables and one batched matmul over the
        # sinusoids instead of B·M·N complex exponentials.
        step = max(1, math.isqrt(n - 1) + 1)
        blocks = -(-n // step)
        t_block = torch.arange(blocks, device=device, dtype=f64) * step
        t_rest = torch.arange(step, device=device, dtype=f64)
        coarse = _unit_phasor(omega.unsqueeze(-1) * t_block + phi.unsqueeze(-1), dtype)  # [b,m,q]
        fine = _unit_phasor(omega.unsqueeze(-1) * t_rest, dtype)  # [b, m, step]
        h = torch.bmm(coarse.transpose(1, 2), fine).reshape(b, blocks * step)[:, :n]
        return h / math.sqrt(m)

    def extra_repr(self) -> str:
        return f"fd_ts={self.fd_ts}, num_sinusoids={self.num_sinusoids}"


def apply_flat_fading(
    x: torch.Tensor,
    h: torch.Tensor,
    snr_db: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The Apply half: y = h·x + n, n ~ CN(0, N0), N0 = noise_variance(snr_db).

    Args:
        x: complex64/complex128 [B, N] symbols at unit average power.
        h: complex [B, N] per-symbol gains, or [B, 1] for one gain per image.
        snr_db: Es/N0 in dB, a scalar or [B]; +inf is noiseless.
        generator: optional torch.Generator for the noise.

    Returns:
        y, same dtype and shape as `x`, differentiable in `x` (and in `h`).
    """
    check_symbols(x)
    check_symbols(h, "h")
    if h.shape[0] != x.shape[0] or h.shape[1] not in (1, x.shape[1]):
        b, k = x.shape
        raise ValueError(f"h must have shape [{b}, {k} or 1], got {tuple(h.shape)}")
    snr = per_sample(snr_db, x.shape[0], "snr_db", device=x.device, allow_pos_inf=True)
    return add_noise(h.to(x.dtype) * x, noise_variance(snr.double()), generator)


#: The channel registry: name → fading model class. The one list of channel names: `make_channel`,
#: `ChannelMix`, `rkdsc eval/loopback --channel` and the symbol_channel block (and its GRC enum, by
#: a test) read it. A new channel is its `FadingModel` above plus an entry here.
CHANNELS: Registry[type[FadingModel]] = Registry(
    "channel",
    {
        "awgn": NoFading,
        "rayleigh": RayleighBlockFading,
        "rayleigh_fast": RayleighTimeVarying,
        "rician": RicianBlockFading,
    },
)

__all__ = [
    "CHANNELS",
    "FadingModel",
    "NoFading",
    "RayleighBlockFading",
    "RayleighTimeVarying",
    "RicianBlockFading",
    "apply_flat_fading",
]
