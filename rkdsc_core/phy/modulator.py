"""Frame assembly and modulation: header + N images × K payload symbols → one burst of IQ samples.

burst = guard zeros | a · RRC-shaped (preamble | header section | payload section) | guard zeros,
with a = `FrameConfig.amplitude` and every sample clipped to |x| <= 1 (the DAC range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rkdsc_core.phy.config import FrameConfig
from rkdsc_core.phy.header import Header, encode_header
from rkdsc_core.phy.preamble import preamble_symbols
from rkdsc_core.phy.pulse import clip, rrc_taps, shape


def _section(layout, data: np.ndarray) -> np.ndarray:
    out = np.empty(layout.length, dtype=np.complex128)
    out[layout.data] = data
    out[layout.pilots] = layout.pilot_values
    return out


def frame_symbols(cfg: FrameConfig, header: Header, payload: np.ndarray) -> np.ndarray:
    """All symbols of a frame, complex128 [cfg.frame_symbols(K, N)]; `payload` complex [N, K] or
    [N·K] (image after image), K = `header.rate`, N = `header.images`."""
    payload = np.asarray(payload)
    n, k = header.images, header.rate
    if payload.shape not in ((n, k), (n * k,)):
        raise ValueError(
            f"payload must hold N={n} images of K={k} symbols ([N, K] or [N·K]), "
            f"got shape {payload.shape}"
        )
    payload = payload.reshape(-1)
    if not np.all(np.isfinite(payload)):
        raise ValueError("payload contains NaN or inf")
    return np.concatenate(
        [
            preamble_symbols(cfg.zc_length, cfg.preamble_reps),
            _section(cfg.header_layout, encode_header(header)),
            _section(cfg.payload_layout(k, n), payload),
        ]
    )


@dataclass(frozen=True)
class Burst:
    """One modulated frame: `samples` complex64 [cfg.burst_samples(K, N)], |x| <= 1; `clipped`
    counts the samples the PAPR limit touched."""

    samples: np.ndarray
    clipped: int


class FrameModulator:
    """Header + payload → burst, for one `FrameConfig`.

    The payload is expected at unit average power (as `semantic_tx` emits it); its peaks above the
    `papr_db` headroom are clipped, not rescaled, so the SNR convention holds frame to frame.
    """

    def __init__(self, cfg: FrameConfig | None = None) -> None:
        self.cfg = cfg or FrameConfig()
        self.taps = rrc_taps(self.cfg.sps, self.cfg.rolloff, self.cfg.span)

    def modulate(self, header: Header, payload: np.ndarray) -> Burst:
        cfg = self.cfg
        shaped = cfg.amplitude * shape(frame_symbols(cfg, header, payload), self.taps, cfg.sps)
        clipped, n_clipped = clip(shaped, 1.0)
        out = np.zeros(len(shaped) + 2 * cfg.guard, dtype=np.complex64)
        out[cfg.guard : cfg.guard + len(shaped)] = clipped
        return Burst(out, n_clipped)
