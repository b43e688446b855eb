"""Numpy-in / numpy-out transmitter and receiver over a loaded model bundle (`rkdsc_core.bundle.
Bundle`), for radios and GNU Radio; `rkdsc_core.runtime` is the public door to them.

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
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from rkdsc_core.channels import mmse_equalize, noise_variance
from rkdsc_core.channels.snr import SNR_LIMIT_DB
from rkdsc_core.data.transforms import to_tensor

if TYPE_CHECKING:  # the bundle builds these; they only hold it
    from rkdsc_core.bundle import Bundle

log = logging.getLogger(__name__)


def _as_batch_snr(snr_db, b: int, k: int) -> torch.Tensor:
    """Scalar, [B] or [B, K] SNR in dB → float32 [B, K]. NaN and −inf are rejected; +inf (a
    noiseless link) is kept for the caller to clamp."""
    snr = np.asarray(snr_db, dtype=np.float64)
    if np.any(np.isnan(snr)) or np.any(snr == -np.inf):
        raise ValueError("snr_db must be finite, or +inf for a noiseless link (not NaN or -inf)")
    snr = np.clip(snr, -SNR_LIMIT_DB, SNR_LIMIT_DB).astype(np.float32)
    if snr.ndim == 0:
        snr = np.full((b, k), snr, np.float32)
    elif snr.shape == (b,):
        snr = np.repeat(snr[:, None], k, 1)
    elif snr.shape != (b, k):
        raise ValueError(f"snr_db must be a scalar, [B]={b} or [B,K]=({b},{k}); got {snr.shape}")
    return torch.from_numpy(np.ascontiguousarray(snr))


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

    def encode_raw(self, images: np.ndarray, snr_db: float | None = None) -> np.ndarray:
        """images → the K_max encoder outputs before power normalisation, complex64 [B, K_max]
        (incremental redundancy sends them in increments: `rkdsc_core.adapt`). The K = k code is
        the first k of them normalised to unit average power."""
        b = self.bundle
        with b._tx_lock, torch.inference_mode():
            feat = self.features(images)
            snr = float("nan") if snr_db is None else float(snr_db)
            raw = b.cat.encoder(feat, torch.full((feat.shape[0],), snr, device=feat.device))
        return raw.cpu().numpy().astype(np.complex64)


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
        if bun.snr_range_db is not None:  # never beyond the trained range (issue 21, row 1)
            snr = snr.clamp(*bun.snr_range_db)
        with bun._rx_lock, torch.inference_mode():  # width k, not K_max (module docstring)
            feat = bun.cat.decode_received(yt.to(bun.device), snr.to(bun.device))
            logits = bun.head(feat)
        return logits.float().cpu().numpy()

    def classify(self, symbols: np.ndarray, snr_db, csi=None) -> tuple[np.ndarray, np.ndarray]:
        """(classes int64 [B], logits float32 [B, C])."""
        logits = self.decode(symbols, snr_db, csi)
        return logits.argmax(1).astype(np.int64), logits


@dataclass
class IRIncrement:
    """One received IR increment of one image (`rkdsc_core.adapt`).

    `y` complex [n] symbols [offset, offset + n) of the image's K_max code as received; `snr_db`
    the SNR of the equalised symbols, or with `csi` (complex [n] or [1] gains, MMSE-equalised
    here) the channel's average Es/N0; `gain` the increment's side information; `final` True for
    the last increment the transmitter has."""

    index: int
    offset: int
    gain: float
    y: np.ndarray
    snr_db: float
    csi: np.ndarray | None = None
    final: bool = False


@dataclass
class IRDecision:
    """The receiver's state of one image after an increment: `symbols` received, `logits`
    float32 [C] of its prefix, `confidence` (1 − the stopping rule's expected gain of going on),
    mean effective SNR (dB), and `done` (decided: no more increments wanted)."""

    index: int
    symbols: int
    logits: np.ndarray
    confidence: float
    snr_db: float
    done: bool


class IRReceiver:
    """Receiver side of incremental redundancy: keeps each image's increments (by index), decodes
    the prefix after each, and stops asking when `StopRule.stop` holds at `confidence`, at the
    final increment, or when an increment is missing (a lost one: it decides with what it has).
    An increment that comes after its image was decided (timed out), or without the image's
    first increment, is ignored: its answer is None."""

    REMEMBER = 1 << 16  # decided indices kept to recognise late increments

    def __init__(self, bundle: Bundle, confidence: float = 0.98, rule=None) -> None:
        self.receiver = bundle.receiver()
        self.rule = rule or bundle.stop_rule()
        self.confidence = float(confidence)
        self.k_max = bundle.k_max
        self._state: dict[int, dict] = {}
        self._decided: dict[int, None] = {}  # insertion-ordered, bounded

    def pending(self) -> list[int]:
        """Indices of images waiting for a further increment, oldest first."""
        return list(self._state)

    def expire(self, index: int) -> IRDecision | None:
        """Decide image `index` with what it has (a timeout); None when it is not pending."""
        st = self._state.pop(int(index), None)
        if st is None:
            return None
        self._remember(int(index))
        return replace(st["last"], done=True)

    def _remember(self, index: int) -> None:
        self._decided[index] = None
        while len(self._decided) > self.REMEMBER:
            del self._decided[next(iter(self._decided))]

    def receive(self, items: list[IRIncrement]) -> list[IRDecision | None]:
        """Take a batch of increments; one decision state per item (same order), None for an
        ignored one."""
        from rkdsc_core.adapt import assemble_prefix

        out: list[IRDecision | None] = [None] * len(items)
        rows = []  # (position in items, increment, state, gap)
        for pos, it in enumerate(items):
            index = int(it.index)
            if index in self._decided or (index not in self._state and it.offset != 0):
                continue  # late (decided already), or its first increment was lost
            st = self._state.setdefault(index, {"x": [], "snr": [], "g": [], "k": 0})
            gap = it.offset != st["k"]
            if not gap:
                x, eff = self._equalise(it)
                st["x"].append(x[None])
                st["snr"].append(eff[None])
                st["g"].append(float(it.gain))
                st["k"] += len(x)
            rows.append((pos, it, st, gap))
        by_k: dict[int, list[int]] = {}
        prefixes = []
        for r, (_, _, st, _) in enumerate(rows):
            x, snr = assemble_prefix(st["x"], st["snr"], np.asarray([st["g"]], np.float32))
            prefixes.append((x[0], snr[0]))
            by_k.setdefault(st["k"], []).append(r)
        for k, where in by_k.items():
            x = np.stack([prefixes[r][0] for r in where])
            snr = np.stack([prefixes[r][1] for r in where])
            logits = self.receiver.decode(x, snr)
            mean_snr = snr.mean(1)
            conf = 1.0 - self.rule.expected_gain(k, logits, mean_snr)
            stop = self.rule.stop(k, logits, mean_snr, self.confidence)
            for i, r in enumerate(where):
                pos, it, st, gap = rows[r]
                done = bool(stop[i] or it.final or gap or k >= self.k_max)
                dec = IRDecision(it.index, k, logits[i], float(conf[i]), float(mean_snr[i]), done)
                st["last"] = dec
                if done and self._state.pop(int(it.index), None) is not None:
                    self._remember(int(it.index))
                out[pos] = dec
        return out

    @staticmethod
    def _equalise(it: IRIncrement) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(it.y, np.complex64)
        if it.csi is None:
            return y, np.full(len(y), it.snr_db, np.float32)
        h = np.broadcast_to(np.asarray(it.csi, np.complex64), y.shape)
        x, eff = mmse_equalize(y[None], h[None], float(noise_variance(float(it.snr_db))))
        return x[0], eff[0].astype(np.float32)


def fold_batchnorm(student: torch.nn.Module, image_shape, device) -> torch.nn.Module:
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
