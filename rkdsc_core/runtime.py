"""Numpy-in / numpy-out transmitter and receiver over a model bundle, for radios and GNU Radio.

Shapes at this boundary (DESIGN.md §2): images `uint8 [B, H, W, C]`, symbols `complex64 [B, K]`,
logits `float32 [B, C]`. Inputs are checked and bad ones raise ValueError with a one-line message
(GNU Radio blocks catch it and drop the PDU). Inference runs under `torch.inference_mode`.

Cheaper paths than the training modules, each equal to them within float tolerance and per sample
(every module is in eval mode, so no sample depends on its batch-mates):
- the transmitter runs the student with BatchNorm folded into the preceding convolutions
  (TorchScript freeze, else `torch.fx`; checked against the module at first use, which is used
  itself if neither works);
- the receiver runs the CAT decoder on the K received symbols only, not padded to K_max (padding
  is masked out of attention, so it changes nothing but the cost);
- the transmitter and the receiver hold separate locks, so a TX and an RX block run concurrently.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from rkdsc_core.bundle import load_component, read_manifest, resolve_bundle_path
from rkdsc_core.channels import mmse_equalize, noise_variance
from rkdsc_core.data.transforms import Normalisation, to_tensor

log = logging.getLogger(__name__)


def _as_batch_snr(snr_db, b: int, k: int) -> torch.Tensor:
    """Scalar, [B] or [B, K] SNR in dB → float32 [B, K]; NaN/inf rejected."""
    snr = np.asarray(snr_db, dtype=np.float32)
    if not np.all(np.isfinite(snr)):
        raise ValueError("snr_db must be finite")
    if snr.ndim == 0:
        snr = np.full((b, k), snr, np.float32)
    elif snr.shape == (b,):
        snr = np.repeat(snr[:, None], k, 1)
    elif snr.shape != (b, k):
        raise ValueError(f"snr_db must be a scalar, [B]={b} or [B,K]=({b},{k}); got {snr.shape}")
    return torch.from_numpy(np.ascontiguousarray(snr))


class Bundle:
    """A loaded model bundle: `transmitter(rate)`, `receiver()`, `choose_rate(snr, target)`."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path = resolve_bundle_path(path)
        self.manifest = read_manifest(self.path)
        self.device = torch.device(device)
        ds = self.manifest["dataset"]
        self.norm = Normalisation(tuple(ds["mean"]), tuple(ds["std"]))
        self.image_shape = (int(ds["image_size"][0]), int(ds["image_size"][1]), int(ds["channels"]))
        self.classes = tuple(ds["classes"])
        self.student = load_component(self.path, "student", self.manifest).to(self.device)
        self.cat = load_component(self.path, "cat", self.manifest).to(self.device)
        self.head = load_component(self.path, "head", self.manifest).to(self.device)
        self.rates = tuple(int(k) for k in self.manifest["cat"]["spec"]["rates"])
        self.k_max = int(self.manifest["cat"]["spec"]["k_max"])
        self._teacher = None
        self._fast_student = None
        # modules are shared by blocks in several threads; TX and RX use disjoint modules
        self._tx_lock = threading.Lock()
        self._rx_lock = threading.Lock()

    @property
    def teacher(self):
        if self._teacher is None:
            self._teacher = load_component(self.path, "teacher", self.manifest).to(self.device)
        return self._teacher

    def inference_student(self) -> torch.nn.Module:
        """The student with BatchNorm folded into its convolutions (built once; the student
        itself when folding fails or disagrees with it). Call with the TX lock held."""
        if self._fast_student is None:
            self._fast_student = _fold_batchnorm(self.student, self.image_shape, self.device)
        return self._fast_student

    def check_rate(self, rate: int) -> int:
        rate = int(rate)
        if not 1 <= rate <= self.k_max:
            raise ValueError(f"rate K={rate} outside 1..{self.k_max} (trained: {self.rates})")
        return rate

    def transmitter(self, rate: int) -> Transmitter:
        rate = self.check_rate(rate)
        with self._tx_lock:
            self.inference_student()  # built now, not in the first encode of a running graph
        return Transmitter(self, rate)

    def receiver(self) -> Receiver:
        return Receiver(self)

    def choose_rate(self, snr_db: float, target: float, channel: str = "awgn") -> int:
        """Smallest trained K whose measured accuracy at the nearest evaluated SNR not above
        `snr_db` reaches `target` (fraction of clean accuracy); the largest K if none does."""
        table = self.manifest.get("rate_table", {}).get(channel)
        if not table:
            raise ValueError(f"bundle has no rate table for channel '{channel}'")
        snrs = np.asarray(table["snr_db"], float)
        i = int(np.searchsorted(snrs, snr_db, side="right") - 1)
        if i < 0:
            return max(table["rates"])
        for k, accs in zip(table["rates"], table["accuracy"]):
            if accs[i] >= target * table["clean_accuracy"]:
                return int(k)
        return int(max(table["rates"]))


class Transmitter:
    """images uint8 [B,H,W,C] → symbols complex64 [B, rate] at unit average power per image."""

    def __init__(self, bundle: Bundle, rate: int) -> None:
        self.bundle = bundle
        self.rate = rate

    def set_rate(self, rate: int) -> None:
        self.rate = self.bundle.check_rate(rate)

    def features(self, images: np.ndarray) -> torch.Tensor:
        b = self.bundle
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.dtype != np.uint8 or images.shape[1:] != b.image_shape:
            raise ValueError(
                f"images must be uint8 [B,{','.join(map(str, b.image_shape))}], "
                f"got {images.dtype} {list(images.shape)}"
            )
        x = to_tensor(images, b.norm).to(b.device)
        return b.inference_student()(x)[0]

    def encode(self, images: np.ndarray, snr_db: float | None = None) -> np.ndarray:
        b = self.bundle
        with b._tx_lock, torch.inference_mode():
            feat = self.features(images)
            sym = b.cat.encode(feat, self.rate, snr_db)[:, : self.rate]
        return sym.cpu().numpy().astype(np.complex64)


class Receiver:
    """Equalised symbols complex64 [B, K] + effective SNR (dB; scalar, [B] or [B,K]) → logits.

    With `csi` (complex gains h, [B] or [B,K]) the symbols are taken as *unequalised* and are
    equalised here (MMSE), and `snr_db` is the channel's average SNR.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def decode(self, symbols: np.ndarray, snr_db, csi=None) -> np.ndarray:
        bun = self.bundle
        y = np.asarray(symbols)
        if y.ndim == 1:
            y = y[None]
        if not np.iscomplexobj(y) or y.ndim != 2:
            raise ValueError(f"symbols must be complex [B,K], got {y.dtype} {list(y.shape)}")
        b, k = y.shape
        if not 1 <= k <= bun.k_max:
            raise ValueError(f"received {k} symbols per image; the codec takes 1..{bun.k_max}")
        if not np.all(np.isfinite(y)):
            raise ValueError("symbols contain NaN or inf")
        yt = torch.from_numpy(np.ascontiguousarray(y, np.complex64))
        snr = _as_batch_snr(snr_db, b, k)
        if csi is not None:
            h = np.asarray(csi, np.complex64)
            h = np.repeat(h[:, None], k, 1) if h.shape == (b,) else h
            if h.shape != (b, k):
                raise ValueError(f"csi must be [B] or [B,K]; got {list(np.shape(csi))}")
            if np.ndim(snr_db) == 2:
                raise ValueError("with csi, snr_db is the channel's average SNR: scalar or [B]")
            n0 = noise_variance(snr[:, 0])
            yt, snr = mmse_equalize(yt, torch.from_numpy(h), n0)
        with bun._rx_lock, torch.inference_mode():  # width k, not K_max (module docstring)
            feat = bun.cat.decode_received(yt.to(bun.device), snr.to(bun.device))
            logits = bun.head(feat)
        return logits.float().cpu().numpy()

    def classify(self, symbols: np.ndarray, snr_db, csi=None) -> tuple[np.ndarray, np.ndarray]:
        """(classes int64 [B], logits float32 [B, C])."""
        logits = self.decode(symbols, snr_db, csi)
        return logits.argmax(1).astype(np.int64), logits


def _fold_batchnorm(student: torch.nn.Module, image_shape, device) -> torch.nn.Module:
    """`student` for inference with eval-mode BatchNorm folded into the convolutions before it:
    traced and frozen by TorchScript (fastest on CPU), else folded by torch.fx; each kept only if
    it matches `student` on a probe batch, else `student` itself."""
    if student.training:
        return student
    h, w, c = image_shape
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(3, c, h, w, generator=gen).to(device)
    check = torch.randn(5, c, h, w, generator=gen).to(device)  # another batch size
    with torch.inference_mode():
        want = student(check)[0]

    def jit():
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit's deprecation notice (it still works)
            return torch.jit.freeze(torch.jit.trace(copy.deepcopy(student), probe))

    def fx():
        from torch.fx.experimental.optimization import fuse

        return fuse(student)  # a traced copy; `student` is left as it is

    for name, make in (("torchscript", jit), ("torch.fx", fx)):
        try:
            fast = make()
            with torch.inference_mode():
                got = fast(check)[0]
            if got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                return fast
            log.debug("BatchNorm folding by %s changed the student's output", name)
        except Exception as exc:  # noqa: BLE001 - an untraceable student still works unfolded
            log.debug("BatchNorm folding by %s unavailable (%s: %s)", name, type(exc).__name__, exc)
    return student


_CACHE: dict[tuple[str, str], Bundle] = {}


def load_bundle(path: str | Path = "default", device: str = "cpu") -> Bundle:
    """Load (once per process) the bundle at `path` ('default' = the shipped one)."""
    key = (str(resolve_bundle_path(path).resolve()), device)
    if key not in _CACHE:
        _CACHE[key] = Bundle(path, device)
    return _CACHE[key]
