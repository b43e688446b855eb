"""Common random numbers for evaluation: every channel draw is a pure function of its key.

The fading gains and the noise of image `i` at one evaluation point come from numpy generators
seeded by `SeedSequence(seed, spawn_key=(channel, SNR, i, stream))`, so every method measured at
that point (RKD-SC, each baseline, the rate sweep, the symbol-level loopback) sees the same h and
the same noise, whatever the batch it is evaluated in (issue 19). The noise of symbol s does not
depend on how many symbols are sent: K = 16 gets the first 16 noise values that K = 64 gets (the
nested prefix the rate-adaptation work relies on), so the key (image, channel, SNR, K, seed) reduces
to (image, channel, SNR, seed) with K the prefix length. Training keeps its torch Generators.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from rkdsc_core.channels.link import Channel, ChannelOutput

_FADING, _NOISE = 0, 1  # the two independent streams of one image
_SNR_OFFSET = 2**40  # milli-dB keys are shifted to stay non-negative (SeedSequence needs it)
_SNR_INF = 2**41


def snr_key(snr_db: float) -> int:
    """The SNR's part of the key: the SNR rounded to 0.001 dB (so 0.1 + 0.2 and 0.3 agree)."""
    s = float(snr_db)
    if math.isnan(s) or s == -math.inf:
        raise ValueError(f"snr_db must be finite or +inf, got {snr_db!r}")
    return _SNR_INF if s == math.inf else _SNR_OFFSET + int(round(s * 1000))


def channel_key(name: str) -> int:
    """The channel's part of the key: CRC-32 of its registry name (stable across runs)."""
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class DrawKey:
    """One evaluation point: every image's draws follow from this and the image's index."""

    seed: int
    channel: str
    snr_db: float

    def __post_init__(self) -> None:
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        snr_key(self.snr_db)

    def generator(self, index: int, stream: int) -> np.random.Generator:
        """The numpy Generator of one image's stream (0: fading, 1: noise)."""
        spawn = (channel_key(self.channel), snr_key(self.snr_db), int(index), stream)
        return np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=spawn))


def _complex_normals(gen: np.random.Generator, n: int) -> np.ndarray:
    """n CN(0, 1) values, complex128 [n]; value s uses the s-th pair of standard normals."""
    z = gen.standard_normal(2 * n)
    return (z[0::2] + 1j * z[1::2]) / math.sqrt(2.0)


def _indices(image_index) -> np.ndarray:
    idx = np.asarray(image_index, dtype=np.int64).reshape(-1)
    if idx.size == 0 or (idx < 0).any():
        raise ValueError("image_index must be one or more non-negative integers")
    return idx


def draw(
    channel: Channel,
    key: DrawKey,
    image_index,
    num_symbols: int,
    dtype: torch.dtype = torch.complex64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The keyed draws of a batch of images for `channel`.

    Args:
        channel: the channel (its fading model maps the draws to gains; pilots lengthen the frame).
        key: seed, channel name and SNR of the point (`key.channel` should be `channel.name`).
        image_index: int [B], each image's index in the evaluated split.
        num_symbols: K, data symbols per image.

    Returns:
        (h, noise): complex `dtype` [B, N] each, N = `channel.frame_length(K)`: the gains and the
        unit-variance CN(0, 1) noise (the channel scales it by sqrt(N0)).
    """
    if key.channel != channel.name:
        raise ValueError(f"key is for channel {key.channel!r}, not {channel.name!r}")
    idx = _indices(image_index)
    n = channel.frame_length(int(num_symbols))
    fading = channel.fading
    normals = np.empty((len(idx), fading.num_normals), np.complex128)
    uniforms = np.empty((len(idx), fading.num_uniforms), np.float64)
    noise = np.empty((len(idx), n), np.complex128)
    for row, i in enumerate(idx.tolist()):
        if fading.num_normals or fading.num_uniforms:
            g = key.generator(i, _FADING)
            normals[row] = _complex_normals(g, fading.num_normals)
            uniforms[row] = g.random(fading.num_uniforms)
        noise[row] = _complex_normals(key.generator(i, _NOISE), n)
    h = fading.gains(torch.from_numpy(normals).to(dtype), torch.from_numpy(uniforms), n)
    return h, torch.from_numpy(noise).to(dtype)


def apply_keyed(
    channel: Channel,
    x: torch.Tensor,
    snr_db: float,
    image_index,
    seed: int = 0,
) -> ChannelOutput:
    """Send `x` complex [B, K] (images `image_index` int [B]) through `channel` at `snr_db` with
    the keyed draws of (seed, channel, SNR, image): the evaluation counterpart of `channel(x, …)`.
    """
    key = DrawKey(int(seed), channel.name, float(snr_db))
    h, noise = draw(channel, key, image_index, x.shape[1], x.dtype)
    if len(h) != x.shape[0]:
        raise ValueError(f"{len(h)} image indices for {x.shape[0]} images")
    return channel.apply(x, h.to(x.device), float(snr_db), noise=noise.to(x.device))


__all__ = ["DrawKey", "apply_keyed", "channel_key", "draw", "snr_key"]
