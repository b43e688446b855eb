"""Source coding of the digital baselines: bit packing, JPEG with shared tables, and the PCA +
scalar quantiser of student features. Pure numpy / Pillow; bits are uint8 0/1 arrays, MSB first.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------------------------------
# bits


def int_to_bits(values: np.ndarray, nbits: int) -> np.ndarray:
    """int [...] → uint8 [..., nbits], MSB first."""
    v = np.asarray(values, np.int64)[..., None]
    return ((v >> np.arange(nbits - 1, -1, -1)) & 1).astype(np.uint8)


def bits_to_int(bits: np.ndarray) -> np.ndarray:
    """uint8 [..., nbits] (MSB first) → int64 [...]."""
    nb = bits.shape[-1]
    return bits.astype(np.int64) @ (1 << np.arange(nb - 1, -1, -1))


# --------------------------------------------------------------------------------------------------
# JPEG with shared tables


def jpeg_split(image: np.ndarray, quality: int) -> tuple[bytes, bytes]:
    """uint8 [H, W, C] → (header up to the end of SOS, entropy-coded scan + EOI).

    With fixed size, quality and Pillow's standard Huffman tables the header is the same for every
    image, so both ends can share it and only the scan needs to be sent.
    """
    from PIL import Image

    img = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False)
    data = buf.getvalue()
    i = data.find(b"\xff\xda")
    sos_len = int.from_bytes(data[i + 2 : i + 4], "big")
    cut = i + 2 + sos_len
    return data[:cut], data[cut:]


def jpeg_join(header: bytes, scan: bytes, shape: tuple[int, int, int]) -> np.ndarray | None:
    """(header, scan bytes) → uint8 [H, W, C], or None when Pillow cannot decode it."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(header + scan))
        img.load()
        arr = np.asarray(img.convert("L" if shape[2] == 1 else "RGB"), np.uint8)
    except Exception:  # corrupted stream: the receiver detects a failed frame
        return None
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr if arr.shape == tuple(shape) else None


def bytes_to_bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))


def bits_to_bytes(bits: np.ndarray) -> bytes:
    return np.packbits(bits.astype(np.uint8)).tobytes()


# --------------------------------------------------------------------------------------------------
# features: PCA and a scalar quantiser


@dataclass
class Pca:
    """Mean and the top `dims` principal directions of training features ([D], [dims, D])."""

    mean: np.ndarray
    basis: np.ndarray
    std: np.ndarray  # [dims] standard deviation of each component on the fitting data

    @classmethod
    def fit(cls, feats: np.ndarray, dims: int) -> Pca:
        mean = feats.mean(0)
        _, s, vt = np.linalg.svd(feats - mean, full_matrices=False)
        dims = min(dims, vt.shape[0])
        return cls(mean, vt[:dims], s[:dims] / math.sqrt(max(len(feats) - 1, 1)))

    def project(self, feats: np.ndarray) -> np.ndarray:
        """[N, D] → [N, dims]."""
        return (feats - self.mean) @ self.basis.T

    def reconstruct(self, coeffs: np.ndarray) -> np.ndarray:
        """[N, dims] → [N, D]."""
        return self.mean + coeffs @ self.basis


@dataclass
class FeatureQuantizer:
    """PCA to `dims` components, each quantised to `bits` bits with equiprobable bins (boundaries at
    training quantiles) reconstructed at the bin's training mean; indices Gray-coded."""

    pca: Pca
    bits: int
    edges: np.ndarray = field(repr=False)  # [dims, 2^bits − 1]
    centroids: np.ndarray = field(repr=False)  # [dims, 2^bits]

    @classmethod
    def fit(cls, feats: np.ndarray, dims: int, bits: int) -> FeatureQuantizer:
        pca = Pca.fit(feats, dims)
        c = pca.project(feats)
        levels = 2**bits
        qs = np.linspace(0, 1, levels + 1)[1:-1]
        edges = np.quantile(c, qs, axis=0).T  # [dims, levels-1]
        cent = np.zeros((c.shape[1], levels))
        for j in range(c.shape[1]):
            idx = np.searchsorted(edges[j], c[:, j])
            for q in range(levels):
                sel = c[idx == q, j]
                cent[j, q] = sel.mean() if len(sel) else 0.0
        return cls(pca, bits, edges, cent)

    @property
    def payload_bits(self) -> int:
        return self.pca.basis.shape[0] * self.bits

    def encode(self, feats: np.ndarray) -> np.ndarray:
        """float [N, D] → uint8 [N, dims·bits]."""
        c = self.pca.project(feats)
        idx = np.stack([np.searchsorted(self.edges[j], c[:, j]) for j in range(c.shape[1])], 1)
        gray = idx ^ (idx >> 1)
        return int_to_bits(gray, self.bits).reshape(len(feats), -1)

    def decode(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [N, dims·bits] → float32 [N, D]."""
        dims = self.pca.basis.shape[0]
        g = bits_to_int(bits.reshape(len(bits), dims, self.bits))
        idx = g.copy()
        shift = g >> 1
        while shift.any():  # inverse Gray code
            idx ^= shift
            shift >>= 1
        c = np.take_along_axis(self.centroids[None], idx[..., None], 2)[..., 0]
        return self.pca.reconstruct(c).astype(np.float32)
