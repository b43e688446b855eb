"""The frame header: 70 bits of fields + CRC-16, polar-coded into 2,048 QPSK symbols.

Bits (MSB first): version 2 | rate K 10 | images N 10 | frame index 8 | first image index 24 |
bundle id 16, then CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of those bits packed MSB first.
The 86 bits are the information bits of a (4096, 86) polar code decoded by CRC-aided successive
cancellation list decoding (`polar.PolarCode`, list 4): no block error in 200 at −12 dB Es/N0 in
AWGN with known gain, where the 512-chip biorthogonal header it replaced failed from about −4 dB.
A PN scrambler whitens the code bits (an all-zero word would otherwise be one repeated QPSK point).

Labels are not sent: a receiver that measures accuracy looks them up by image index.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rkdsc_core.phy.polar import PolarCode

VERSION = 2
_FIELDS = (
    ("version", 2),
    ("rate", 10),
    ("images", 10),
    ("frame_index", 8),
    ("image_index", 24),
    ("bundle_id", 16),
)
FIELD_BITS = sum(b for _, b in _FIELDS)  # 70
CRC_BITS = 16
HEADER_BITS = FIELD_BITS + CRC_BITS  # 86
CODE_BITS = 4096
#: QPSK symbols of the coded header (two code bits each).
HEADER_SYMBOLS = CODE_BITS // 2
MAX_RATE = (1 << 10) - 1
MAX_IMAGES = (1 << 10) - 1
#: per-coded-bit design SNR of the frozen set (exp(−SNR) Bhattacharyya parameter) and list size
DESIGN_SNR_DB = -10.0
LIST_SIZE = 4


@dataclass(frozen=True)
class Header:
    """What a frame says about itself.

    Args:
        rate: K, payload symbols per image (1..1023).
        images: N, images in the frame (1..1023); the payload holds N·K symbols, image i at
            symbols i·K … (i + 1)·K − 1, with index `image_index + i`.
        frame_index: transmitter's frame counter (mod 2^8), for counting missed frames.
        image_index: dataset index of the first image (mod 2^24).
        bundle_id: 16-bit identifier of the model bundle (`bundle_id_from_bytes`).
    """

    rate: int
    images: int = 1
    frame_index: int = 0
    image_index: int = 0
    bundle_id: int = 0
    version: int = VERSION

    def __post_init__(self) -> None:
        if not 1 <= self.rate <= MAX_RATE:
            raise ValueError(f"header rate K must be in 1..{MAX_RATE}, got {self.rate}")
        if not 1 <= self.images <= MAX_IMAGES:
            raise ValueError(f"header images N must be in 1..{MAX_IMAGES}, got {self.images}")
        for name, bits in _FIELDS:
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"header {name} must fit {bits} bits, got {value}")

    @property
    def payload_symbols(self) -> int:
        """N·K."""
        return self.rate * self.images

    @classmethod
    def wrap(
        cls, rate: int, images: int, frame_index: int, image_index: int, bundle_id: int
    ) -> Header:
        """A header with counters reduced modulo their field widths."""
        return cls(
            int(rate),
            int(images),
            frame_index % (1 << 8),
            image_index % (1 << 24),
            bundle_id % (1 << 16),
        )


def bundle_id_from_bytes(data: bytes) -> int:
    """16-bit bundle identifier: CRC-16/CCITT-FALSE of the bundle's manifest bytes."""
    return binascii.crc_hqx(data, 0xFFFF)


def _to_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _crc(bits: np.ndarray) -> int:
    return binascii.crc_hqx(np.packbits(np.asarray(bits, np.uint8)).tobytes(), 0xFFFF)


def header_bits(header: Header) -> np.ndarray:
    """The 86 header bits, uint8 [86] (fields then CRC, MSB first)."""
    bits = [b for name, width in _FIELDS for b in _to_bits(getattr(header, name), width)]
    return np.array(bits + _to_bits(_crc(np.array(bits)), CRC_BITS), dtype=np.uint8)


def crc_ok(bits: np.ndarray) -> bool:
    """True when the last 16 of the 86 bits are the CRC of the first 70."""
    crc = int.from_bytes(np.packbits(bits[FIELD_BITS:]).tobytes(), "big")
    return _crc(bits[:FIELD_BITS]) == crc


def parse_bits(bits: np.ndarray) -> Header | None:
    """Inverse of `header_bits`: a Header, or None when the CRC or a field is wrong."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.shape != (HEADER_BITS,):
        raise ValueError(f"expected {HEADER_BITS} bits, got shape {bits.shape}")
    if not crc_ok(bits):
        return None
    fields, pos = {}, 0
    for name, width in _FIELDS:
        fields[name] = int("".join(map(str, bits[pos : pos + width])), 2)
        pos += width
    if fields["version"] != VERSION or fields["rate"] == 0 or fields["images"] == 0:
        return None
    return Header(**fields)


@lru_cache(maxsize=1)
def header_code() -> PolarCode:
    return PolarCode(CODE_BITS, HEADER_BITS, DESIGN_SNR_DB, LIST_SIZE)


@lru_cache(maxsize=1)
def scrambler() -> np.ndarray:
    """PN9 (x^9 + x^5 + 1, all-ones seed) bits, uint8 [4096]."""
    state = [1] * 9
    out = []
    for _ in range(CODE_BITS):
        bit = state[8] ^ state[4]
        out.append(state[8])
        state = [bit] + state[:8]
    seq = np.array(out, dtype=np.uint8)
    seq.flags.writeable = False
    return seq


def encode_bits(bits: np.ndarray) -> np.ndarray:
    """86 bits → 2,048 unit-power QPSK symbols, complex128 [2048]: code bit 2i on I, 2i + 1 on
    Q, 0 ↦ +1/√2."""
    code = header_code().encode(np.asarray(bits, dtype=np.uint8)) ^ scrambler()
    pm = (1.0 - 2.0 * code.astype(np.float64)).reshape(-1, 2) / np.sqrt(2.0)
    return pm[:, 0] + 1j * pm[:, 1]


def soft_bits(symbols: np.ndarray) -> np.ndarray:
    """Equalised QPSK symbols (complex [2048], any positive scale) → descrambled code-bit LLRs up
    to a common factor, float64 [4096] (positive favours 0)."""
    y = np.asarray(symbols)
    if y.shape != (HEADER_SYMBOLS,):
        raise ValueError(f"expected {HEADER_SYMBOLS} header symbols, got shape {y.shape}")
    llr = np.stack([y.real, y.imag], axis=1).reshape(-1).astype(np.float64)
    return llr * (1.0 - 2.0 * scrambler())


def decode_bits(symbols: np.ndarray) -> np.ndarray | None:
    """Equalised header symbols → the 86 bits of the most likely list path that passes the CRC,
    uint8 [86], or None."""
    return header_code().decode(soft_bits(symbols), crc_ok)


def encode_header(header: Header) -> np.ndarray:
    """Header → 2,048 QPSK symbols, complex128 [2048]."""
    return encode_bits(header_bits(header))


def decode_header(symbols: np.ndarray) -> Header | None:
    """Equalised header symbols complex [2048] → Header, or None when no list path passes."""
    bits = decode_bits(symbols)
    return None if bits is None else parse_bits(bits)
