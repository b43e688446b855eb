"""The frame header: 82 bits of fields + CRC-16, polar-coded into 2,048 QPSK symbols.

Bits (MSB first), version 3: version 2 | rate K 10 | images N 10 | frame index 8 | first image
index 24 | bundle id 16 | increment 1 | final 1 | offset 10, then CRC-16/CCITT-FALSE (poly 0x1021,
init 0xFFFF) of those bits packed MSB first. The 98 bits are the information bits of a
(4096, 98) polar code decoded by CRC-aided successive cancellation list decoding
(`polar.PolarCode`, list 4). A PN scrambler whitens the code bits (an all-zero word would
otherwise be one repeated QPSK point).

The last three fields carry incremental redundancy (issue 18): `increment` marks a frame of IR
increments, `offset` is the first symbol of each increment in its image's nested code (the N
images of a frame share offset and length K) and `final` says the transmitter has no further
increment. No gain travels: increments are self-normalising (each at unit power, decoded as if
of equal gain; `rkdsc_core.adapt`).

Version 2 (before IR) had the first 70 field bits only and a (4096, 86) code. `decode_header`
still reads it (a v3 decode that fails its CRC is retried with the v2 code), so recordings made
before v3 replay; the transmitter writes v3.

Labels are not sent: a receiver that measures accuracy looks them up by image index.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rkdsc_core.phy.polar import PolarCode

VERSION = 3
_FIELDS_V2 = (
    ("version", 2),
    ("rate", 10),
    ("images", 10),
    ("frame_index", 8),
    ("image_index", 24),
    ("bundle_id", 16),
)
_FIELDS_V3 = _FIELDS_V2 + (("increment", 1), ("final", 1), ("offset", 10))
#: fields of each header version the receiver reads (the newest first)
FIELDS = {3: _FIELDS_V3, 2: _FIELDS_V2}
_FIELDS = _FIELDS_V3
FIELD_BITS = sum(b for _, b in _FIELDS)  # 82
CRC_BITS = 16
HEADER_BITS = FIELD_BITS + CRC_BITS  # 98
#: information bits of each version's polar code (fields + CRC)
VERSION_BITS = {v: sum(b for _, b in f) + CRC_BITS for v, f in FIELDS.items()}
CODE_BITS = 4096
#: QPSK symbols of the coded header (two code bits each).
HEADER_SYMBOLS = CODE_BITS // 2
MAX_RATE = (1 << 10) - 1
MAX_IMAGES = (1 << 10) - 1
#: per-coded-bit design SNR of the frozen set (exp(−SNR) Bhattacharyya parameter) and list size
DESIGN_SNR_DB = -10.0
LIST_SIZE = 8


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
        version: 3 (written now) or 2 (read from older recordings; no IR fields).
        increment: the payload holds IR increments (symbols [offset, offset + K) of each
            image's nested code), not whole K-symbol codes.
        final: with `increment`: the transmitter has no further increment for these images.
        offset: with `increment`: the increments' first symbol in their images' code (0..1023).
    """

    rate: int
    images: int = 1
    frame_index: int = 0
    image_index: int = 0
    bundle_id: int = 0
    version: int = VERSION
    increment: int = 0
    final: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        if self.version not in FIELDS:
            raise ValueError(f"header version must be one of {sorted(FIELDS)}, got {self.version}")
        if self.version < 3 and (self.increment or self.final or self.offset):
            raise ValueError("a version 2 header carries no increment fields")
        if not self.increment and (self.final or self.offset):
            raise ValueError("final and offset belong to increment frames (increment=1)")
        if not 1 <= self.rate <= MAX_RATE:
            raise ValueError(f"header rate K must be in 1..{MAX_RATE}, got {self.rate}")
        if not 1 <= self.images <= MAX_IMAGES:
            raise ValueError(f"header images N must be in 1..{MAX_IMAGES}, got {self.images}")
        for name, bits in FIELDS[self.version]:
            value = int(getattr(self, name))
            if not 0 <= value < 1 << bits:
                raise ValueError(f"header {name} must fit {bits} bits, got {value}")

    @property
    def payload_symbols(self) -> int:
        """N·K."""
        return self.rate * self.images

    @classmethod
    def wrap(
        cls,
        rate: int,
        images: int,
        frame_index: int,
        image_index: int,
        bundle_id: int,
        increment: bool = False,
        final: bool = False,
        offset: int = 0,
    ) -> Header:
        """A header with counters reduced modulo their field widths."""
        return cls(
            int(rate),
            int(images),
            frame_index % (1 << 8),
            image_index % (1 << 24),
            bundle_id % (1 << 16),
            increment=int(bool(increment)),
            final=int(bool(final)),
            offset=int(offset),
        )


def bundle_id_from_bytes(data: bytes) -> int:
    """16-bit bundle identifier: CRC-16/CCITT-FALSE of the bundle's manifest bytes."""
    return binascii.crc_hqx(data, 0xFFFF)


def _to_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _crc(bits: np.ndarray) -> int:
    return binascii.crc_hqx(np.packbits(np.asarray(bits, np.uint8)).tobytes(), 0xFFFF)


def header_bits(header: Header) -> np.ndarray:
    """The header bits of its version, uint8 [98] (v3) or [86] (v2): fields then CRC, MSB
    first."""
    fields = FIELDS[header.version]
    bits = [b for name, width in fields for b in _to_bits(int(getattr(header, name)), width)]
    return np.array(bits + _to_bits(_crc(np.array(bits)), CRC_BITS), dtype=np.uint8)


def crc_ok(bits: np.ndarray) -> bool:
    """True when the last 16 bits are the CRC of the bits before them."""
    crc = int.from_bytes(np.packbits(bits[-CRC_BITS:]).tobytes(), "big")
    return _crc(bits[:-CRC_BITS]) == crc


def parse_bits(bits: np.ndarray) -> Header | None:
    """Inverse of `header_bits` (98 bits: version 3, 86: version 2): a Header, or None when the
    CRC or a field is wrong (a version field that does not match the length is wrong)."""
    bits = np.asarray(bits, dtype=np.uint8)
    version = next((v for v, n in VERSION_BITS.items() if bits.shape == (n,)), None)
    if version is None:
        sizes = " or ".join(str(n) for n in VERSION_BITS.values())
        raise ValueError(f"expected {sizes} header bits, got shape {bits.shape}")
    if not crc_ok(bits):
        return None
    fields, pos = {}, 0
    for name, width in FIELDS[version]:
        fields[name] = int("".join(map(str, bits[pos : pos + width])), 2)
        pos += width
    if fields["version"] != version or fields["rate"] == 0 or fields["images"] == 0:
        return None
    try:
        return Header(**fields)
    except ValueError:  # e.g. an offset without the increment flag
        return None


@lru_cache(maxsize=len(FIELDS))
def header_code(version: int = VERSION) -> PolarCode:
    """The polar code of a header version: (4096, 98) for v3, (4096, 86) for v2."""
    return PolarCode(CODE_BITS, VERSION_BITS[version], DESIGN_SNR_DB, LIST_SIZE)


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
    """98 (or 86: v2) bits → 2,048 unit-power QPSK symbols, complex128 [2048]: code bit 2i on I,
    2i + 1 on Q, 0 ↦ +1/√2."""
    bits = np.asarray(bits, dtype=np.uint8)
    version = next((v for v, n in VERSION_BITS.items() if len(bits) == n), None)
    if version is None:
        raise ValueError(f"no header version has {len(bits)} bits")
    code = header_code(version).encode(bits) ^ scrambler()
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
    """Equalised header symbols → the bits of the most likely list path that passes the CRC,
    uint8 [98] (v3; tried first) or [86] (v2: read when no v3 path passes), or None."""
    llr = soft_bits(symbols)
    for version in FIELDS:
        bits = header_code(version).decode(llr, crc_ok)
        if bits is not None and parse_bits(bits) is not None:
            return bits
    return None


def encode_header(header: Header) -> np.ndarray:
    """Header → 2,048 QPSK symbols, complex128 [2048]."""
    return encode_bits(header_bits(header))


def decode_header(symbols: np.ndarray) -> Header | None:
    """Equalised header symbols complex [2048] → Header, or None when no list path passes."""
    bits = decode_bits(symbols)
    return None if bits is None else parse_bits(bits)
