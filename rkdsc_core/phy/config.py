"""Frame parameters and the symbol layout they imply (preamble | header section | payload section).

    preamble: R repetitions of a Zadoff–Chu sequence of length L, each with its sign (preamble.py)
    header section: 2,048 polar-coded QPSK symbols with pilots spread through them (header.py)
    payload section: N images × K analog symbols with pilots spread through them

Sections are laid out by `rkdsc_core.channels.pilot_positions`, so the header section depends on
neither K nor N (the receiver learns both from the header).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from rkdsc_core.channels import db_to_linear, pilot_positions, pilot_symbols

#: QPSK symbols of the coded header (header.HEADER_SYMBOLS; a (4096, 98) polar code, v3).
HEADER_SYMBOLS = 2048


@dataclass(frozen=True)
class FrameConfig:
    """Waveform parameters shared by the modulator and the receiver (both ends must agree).

    Args:
        sps: samples per symbol, an even integer >= 2 (the receiver's equaliser is T/2-spaced).
        rolloff: root-raised-cosine roll-off in (0, 1].
        span: RRC length in symbols; the filter has span·sps + 1 taps.
        zc_length: length L of the Zadoff–Chu sequence (root 1) repeated in the preamble.
        preamble_reps: repetitions R >= 2; CFO is estimated from the phase step between repetitions,
            unambiguous for |CFO| < 1 / (2·L·sps) cycles/sample (±3.9e-3 with the defaults; the
            receiver's tested range is narrower, see docs/hardware.md).
        pilot_spacing: at most pilot_spacing − 1 data symbols per pilot, >= 2.
        papr_db: clip level above the average sample power, in dB: the modulator scales frames so
            that samples fit |x| <= 1 with this much headroom and clips the rare peaks above it.
        guard: zero samples before and after every burst.
        images_per_frame: N, images a transmitter packs into one frame (preamble and header paid
            once per N images); the receiver reads N from each header.
    """

    sps: int = 4
    rolloff: float = 0.35
    span: int = 10
    zc_length: int = 32
    preamble_reps: int = 16
    pilot_spacing: int = 16
    papr_db: float = 9.0
    guard: int = 64
    images_per_frame: int = 1

    def __post_init__(self) -> None:
        checks = {
            "sps": (self.sps >= 2 and self.sps % 2 == 0, "an even integer >= 2"),
            "rolloff": (0.0 < self.rolloff <= 1.0, "in (0, 1]"),
            "span": (self.span >= 2, ">= 2"),
            "zc_length": (self.zc_length >= 8, ">= 8"),
            "preamble_reps": (self.preamble_reps >= 2, ">= 2"),
            "pilot_spacing": (self.pilot_spacing >= 2, ">= 2"),
            "papr_db": (0.0 <= self.papr_db <= 20.0, "in [0, 20] dB"),
            "guard": (self.guard >= 0, ">= 0"),
            "images_per_frame": (1 <= self.images_per_frame <= 1023, "in 1..1023"),
        }
        for name, (ok, what) in checks.items():
            if not ok:
                raise ValueError(f"FrameConfig.{name} must be {what}, got {getattr(self, name)!r}")

    # --- amplitudes -------------------------------------------------------------------------
    @property
    def amplitude(self) -> float:
        """Symbol amplitude a at the transmitter: average sample power a²/sps sits `papr_db` below
        the clip level 1."""
        return math.sqrt(self.sps / db_to_linear(self.papr_db))

    @property
    def symbol_energy(self) -> float:
        """Es = a², the energy per unit-power symbol at the matched-filter output (DESIGN.md §3 for
        waveforms: Es/N0 with N0 the complex noise variance per sample)."""
        return self.amplitude**2

    @property
    def rrc_taps(self) -> int:
        return self.span * self.sps + 1

    # --- layout -----------------------------------------------------------------------------
    @property
    def preamble_len(self) -> int:
        """Preamble symbols R·L."""
        return self.zc_length * self.preamble_reps

    @property
    def header_layout(self) -> SectionLayout:
        return section_layout(HEADER_SYMBOLS, self.pilot_spacing)

    def payload_layout(self, rate: int, images: int = 1) -> SectionLayout:
        """Layout of the payload section for N = `images` images of K = `rate` symbols."""
        return section_layout(rate * images, self.pilot_spacing)

    def frame_symbols(self, rate: int, images: int = 1) -> int:
        """Symbols in a frame of N images of K symbols."""
        return (
            self.preamble_len + self.header_layout.length + self.payload_layout(rate, images).length
        )

    def burst_samples(self, rate: int, images: int = 1) -> int:
        """Samples in a burst: guard + shaped frame (symbols·sps + taps − 1) + guard."""
        return 2 * self.guard + self.frame_symbols(rate, images) * self.sps + self.rrc_taps - 1

    def payload_efficiency(self, rate: int, images: int | None = None) -> float:
        """Semantic symbol periods ÷ every symbol period of the burst (pilots, preamble, header,
        guard and filter tails included), for N images (default `images_per_frame`)."""
        n = self.images_per_frame if images is None else int(images)
        return rate * n * self.sps / self.burst_samples(rate, n)

    def channel_uses_per_image(self, rate: int, images: int | None = None) -> float:
        """Symbol periods on the air per image, all overhead included."""
        n = self.images_per_frame if images is None else int(images)
        return self.burst_samples(rate, n) / self.sps / n


@dataclass(frozen=True)
class SectionLayout:
    """Positions inside one section (header or payload): `data` and `pilots` index the section's
    symbols (int64, sorted, disjoint, covering `length`); `pilot_values` complex128 [P]."""

    length: int
    data: np.ndarray
    pilots: np.ndarray
    pilot_values: np.ndarray


@lru_cache(maxsize=64)
def section_layout(num_data: int, spacing: int) -> SectionLayout:
    """`num_data` data symbols with ceil(num_data / (spacing − 1)) pilots spread evenly through
    them (`pilot_positions`); pilot values are the `pilot_symbols` chirp of that length."""
    if num_data < 1:
        raise ValueError(f"a section needs at least one data symbol, got {num_data}")
    num_pilots = max(1, math.ceil(num_data / (spacing - 1)))
    pilot_idx, data_idx = pilot_positions(num_data, num_pilots)
    values = pilot_symbols(num_pilots, dtype=torch.complex128).numpy()
    layout = SectionLayout(
        num_data + num_pilots, data_idx.numpy().copy(), pilot_idx.numpy().copy(), values.copy()
    )
    for arr in (layout.data, layout.pilots, layout.pilot_values):
        arr.flags.writeable = False  # shared by every caller through the cache
    return layout
