"""The frame header: 80 bits of fields + CRC-16, coded into 512 scrambled BPSK chips.

Bits (MSB first): version 4 | rate K 12 | frame index 16 | image index 24 | bundle id 16 | label 8,
then CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of those 10 bytes. The 96 bits are cut into 16
six-bit words, each sent as a first-order Reed–Muller RM(1,5) (biorthogonal, 32 chips, d_min = 16)
codeword, decoded softly with one 32-point Hadamard transform per word. A PN9 scrambler keeps the
chips free of DC (the all-zero word would otherwise be 32 equal chips).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rkdsc_core.phy.config import HEADER_CHIPS

VERSION = 1
NO_LABEL = 255
_FIELDS = (
    ("version", 4),
    ("rate", 12),
    ("frame_index", 16),
    ("image_index", 24),
    ("bundle_id", 16),
    ("label", 8),
)
FIELD_BITS = sum(b for _, b in _FIELDS)  # 80
CRC_BITS = 16
WORD_BITS = 6  # RM(1,5) carries 6 bits in 32 chips
CHIPS_PER_WORD = 32
WORDS = (FIELD_BITS + CRC_BITS) // WORD_BITS  # 16
assert WORDS * CHIPS_PER_WORD == HEADER_CHIPS


@dataclass(frozen=True)
class Header:
    """What a frame says about itself.

    Args:
        rate: K, payload symbols (1..4095).
        frame_index: transmitter's frame counter (mod 2^16).
        image_index: dataset index of the image (mod 2^24).
        bundle_id: 16-bit identifier of the model bundle (`bundle_id_from_bytes`).
        label: class label for measuring accuracy over the air (0..254), NO_LABEL when unknown.
    """

    rate: int
    frame_index: int = 0
    image_index: int = 0
    bundle_id: int = 0
    label: int = NO_LABEL
    version: int = VERSION

    def __post_init__(self) -> None:
        if not 1 <= self.rate < 1 << 12:
            raise ValueError(f"header rate K must be in 1..4095, got {self.rate}")
        for name, bits in _FIELDS:
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"header {name} must fit {bits} bits, got {value}")

    @classmethod
    def wrap(
        cls, rate: int, frame_index: int, image_index: int, bundle_id: int, label: int | None
    ) -> Header:
        """A header with counters reduced modulo their field widths; label None → NO_LABEL."""
        lab = NO_LABEL if label is None or not 0 <= label < NO_LABEL else int(label)
        return cls(
            int(rate), frame_index % (1 << 16), image_index % (1 << 24), bundle_id % (1 << 16), lab
        )


def bundle_id_from_bytes(data: bytes) -> int:
    """16-bit bundle identifier: CRC-16/CCITT-FALSE of the bundle's manifest bytes."""
    return binascii.crc_hqx(data, 0xFFFF)


def _to_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def header_bits(header: Header) -> np.ndarray:
    """The 96 header bits, uint8 [96] (fields then CRC, MSB first)."""
    bits = [b for name, width in _FIELDS for b in _to_bits(getattr(header, name), width)]
    crc = binascii.crc_hqx(np.packbits(np.array(bits, np.uint8)).tobytes(), 0xFFFF)
    return np.array(bits + _to_bits(crc, CRC_BITS), dtype=np.uint8)


def parse_bits(bits: np.ndarray) -> Header | None:
    """Inverse of `header_bits`: a Header, or None when the CRC or a field is wrong."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.shape != (FIELD_BITS + CRC_BITS,):
        raise ValueError(f"expected {FIELD_BITS + CRC_BITS} bits, got shape {bits.shape}")
    data = np.packbits(bits[:FIELD_BITS]).tobytes()
    crc = int.from_bytes(np.packbits(bits[FIELD_BITS:]).tobytes(), "big")
    if binascii.crc_hqx(data, 0xFFFF) != crc:
        return None
    value = int.from_bytes(data, "big")
    fields, shift = {}, FIELD_BITS
    for name, width in _FIELDS:
        shift -= width
        fields[name] = (value >> shift) & ((1 << width) - 1)
    if fields["version"] != VERSION or fields["rate"] == 0:
        return None
    return Header(**fields)


@lru_cache(maxsize=1)
def hadamard32() -> np.ndarray:
    """Sylvester Hadamard matrix, float64 [32, 32]: H[m, j] = (−1)^popcount(m & j)."""
    idx = np.arange(CHIPS_PER_WORD)
    anded = idx[:, None] & idx[None, :]
    parity = sum((anded >> b) & 1 for b in range(WORD_BITS - 1)) % 2
    h = 1.0 - 2.0 * parity
    h.flags.writeable = False
    return h


@lru_cache(maxsize=1)
def scrambler() -> np.ndarray:
    """PN9 (x^9 + x^5 + 1, all-ones seed) as ±1.0, float64 [512]."""
    state = [1] * 9
    out = []
    for _ in range(HEADER_CHIPS):
        bit = state[8] ^ state[4]
        out.append(state[8])
        state = [bit] + state[:8]
    seq = 1.0 - 2.0 * np.array(out, dtype=np.float64)
    seq.flags.writeable = False
    return seq


def encode_bits(bits: np.ndarray) -> np.ndarray:
    """96 bits → 512 scrambled BPSK chips, float64 [512] of ±1.

    Word w carries bits b0..b5: b0 is the sign, b1..b5 (LSB first) pick the Hadamard row.
    """
    words = np.asarray(bits, dtype=np.int64).reshape(WORDS, WORD_BITS)
    rows = words[:, 1:] @ (1 << np.arange(WORD_BITS - 1))
    chips = (1.0 - 2.0 * words[:, :1]) * hadamard32()[rows]
    return chips.reshape(-1) * scrambler()


def decode_chips(soft: np.ndarray) -> np.ndarray:
    """Soft chips (float [512], positive ↔ +1, any scale) → the 96 most likely bits, uint8 [96]."""
    soft = np.asarray(soft, dtype=np.float64)
    if soft.shape != (HEADER_CHIPS,):
        raise ValueError(f"expected {HEADER_CHIPS} soft chips, got shape {soft.shape}")
    # [16, 32] correlations with every Hadamard row (einsum: no BLAS worker threads, see sync.py)
    corr = np.einsum("wc,mc->wm", (soft * scrambler()).reshape(WORDS, CHIPS_PER_WORD), hadamard32())
    rows = np.argmax(np.abs(corr), axis=1)
    sign = corr[np.arange(WORDS), rows] < 0
    bits = np.zeros((WORDS, WORD_BITS), dtype=np.uint8)
    bits[:, 0] = sign
    bits[:, 1:] = (rows[:, None] >> np.arange(WORD_BITS - 1)) & 1
    return bits.reshape(-1)


def encode_header(header: Header) -> np.ndarray:
    """Header → 512 BPSK chips, float64 [512] of ±1."""
    return encode_bits(header_bits(header))


def decode_header(soft: np.ndarray) -> Header | None:
    """Soft chips float [512] → Header, or None when the CRC fails."""
    return parse_bits(decode_chips(soft))
