"""Baselines next to RKD-SC (issue 11): no-CAT analog features, separate source/channel coding, and
the capacity bound for the label.

Every baseline is registered in `BASELINES` (name → runner; `--baselines all` runs them in that
order). The digital links (QAM, LLRs, bits, JPEG, coded frames) are in `eval/digital_link.py`. Pure
numpy / Pillow / torch. The forward error correction itself (GNU Radio's `gnuradio.fec`) lives in
`rkdsc_gr.digital_baselines` and comes in as a `BlockCode` factory from the `rkdsc` command, so that
this layer never imports gnuradio (DESIGN.md §2). Conventions:

- symbols are complex64 [N, K] with unit average power (DESIGN.md §3); a digital link sends each
  image's frame through the same `rkdsc_core.channels` channel as RKD-SC, equalised with perfect
  CSI (zero forcing, so that the constellation is not scaled), with the effective per-symbol N0
  handed to the soft demapper;
- LLRs are log P(b=0)/P(b=1) (positive means bit 0), float32 [N, nbits];
- bits are uint8 0/1 arrays.

Decoding failures are not hidden: a label decoded wrong is a wrong class; a quantised feature
decoded with bit errors is classified as received; a JPEG that Pillow cannot parse counts as a
uniform random guess among the classes (a receiver with a CRC would know the frame failed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rkdsc_core.channels import (
    apply_keyed,
    db_to_linear,
    linear_to_db,
    make_channel,
)
from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.eval.digital_link import (
    CodeFactory,
    bits_to_bytes,
    bits_to_int,
    bytes_to_bits,
    coded_link,
    int_to_bits,
    jpeg_join,
    jpeg_split,
)
from rkdsc_core.eval.harness import point
from rkdsc_core.registry import Registry
from rkdsc_core.runtime import Bundle

log = logging.getLogger(__name__)

# Budgets when the bundle holds no trained copy (`rkdsc train --stage baselines` exports one):
SINGLE_STAGE_STEPS = 150  # Adam steps, batch 64 (the student's DARTS cells are slow on CPU)
TEACHER_CAT_STEPS = 600  # Adam steps, batch 128, on teacher embeddings computed once
DEEPJSCC_STEPS = 300  # Adam steps of the DeepJSCC-CNN baseline (short, CPU budget)


# --------------------------------------------------------------------------------------------------
# capacity


def capacity_snr_db(rate: int, num_classes: int) -> float:
    """SNR (Es/N0 dB) where K·log2(1+SNR) = log2 C: below it no code delivers the label reliably."""
    return float(linear_to_db(2.0 ** (math.log2(num_classes) / rate) - 1.0))


def capacity_bound_curve(
    snrs, rate: int, num_classes: int, channel: str, accuracy_at_tx: float
) -> list[dict]:
    """Accuracy of an ideal label link that is error-free above capacity and guesses below it.

    The threshold is where K·log2(1+SNR) = log2 C; a finite code can beat this step below the
    threshold (it is a reliability limit, not an accuracy bound). AWGN: `accuracy_at_tx` above
    the capacity SNR, 1/C below. Block Rayleigh (one h per image): the outage form
    acc·(1 − p_out) + p_out/C with p_out = P(|h|²·SNR < SNR_cap) = 1 − exp(−SNR_cap/SNR).
    Other channels: the AWGN step (stated as such in baseline_info).
    """
    thr = db_to_linear(capacity_snr_db(rate, num_classes))
    pts = []
    for s in snrs:
        if channel.startswith("rayleigh"):
            p_out = 1.0 - math.exp(-thr / db_to_linear(float(s)))
        else:
            p_out = 0.0 if db_to_linear(float(s)) >= thr else 1.0
        acc = accuracy_at_tx * (1 - p_out) + p_out / num_classes
        pts.append({"snr_db": float(s), "accuracy": float(acc)})
    return pts


# --------------------------------------------------------------------------------------------------
# features: student features, PCA, scalar quantiser


_FEATURES: dict[tuple, np.ndarray] = {}  # filled during one run_baselines call, then cleared
_CACHE_ON = False


def student_features(bundle: Bundle, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """uint8 [N, H, W, C] → float32 [N, D] student features (no channel)."""
    key = (id(bundle), id(images), images.shape)
    if key in _FEATURES:
        return _FEATURES[key]
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = to_tensor(images[i : i + batch_size], bundle.norm).to(bundle.device)
            out.append(bundle.student(x)[0].float().cpu().numpy())
    feats = np.concatenate(out)
    if _CACHE_ON:
        _FEATURES[key] = feats
    return feats


def student_head_classes(bundle: Bundle, feats: np.ndarray) -> np.ndarray:
    """float32 [N, D] features → int64 [N] classes by the student's own (stage-1) linear head."""
    with torch.inference_mode():
        logits = bundle.student.head(torch.from_numpy(np.ascontiguousarray(feats, np.float32)))
    return logits.argmax(1).numpy().astype(np.int64)


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


def choose_quantizer(
    bundle: Bundle, train_feats: np.ndarray, train_labels: np.ndarray, payload_bits: int
) -> FeatureQuantizer:
    """The (dims, bits) split of `payload_bits` with the best clean accuracy on the training
    features (the quantiser is designed on training data only)."""
    best, best_acc = None, -1.0
    for b in (1, 2, 3, 4):
        if payload_bits % b:
            continue
        q = FeatureQuantizer.fit(train_feats, payload_bits // b, b)
        acc = float(
            (student_head_classes(bundle, q.decode(q.encode(train_feats))) == train_labels).mean()
        )
        log.info(
            "feature quantiser %d dims × %d bits: train accuracy %.3f", payload_bits // b, b, acc
        )
        if acc > best_acc:
            best, best_acc = q, acc
    return best


def label_digital(
    bundle: Bundle,
    data: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    code_factory: CodeFactory,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Classify at the transmitter (student + its own head), send ⌈log2 C⌉ bits with a polar code at
    the lowest rate that fits K symbols of QPSK (block length the largest power of two ≤ 2K)."""
    c = len(bundle.classes)
    kb = max(1, math.ceil(math.log2(c)))
    n = 2 ** int(math.floor(math.log2(2 * rate)))
    if n < kb:
        raise ValueError(f"K={rate} QPSK symbols cannot carry {kb} label bits")
    code = code_factory("polar", n=n, k=kb)
    cls = student_head_classes(bundle, student_features(bundle, data.images))
    bits = int_to_bits(cls, kb)
    pts = []
    for s in snrs:
        got = np.minimum(bits_to_int(coded_link(bits, code, 4, channel, s, seed)), c - 1)
        pts.append(point({"snr_db": float(s)}, got == data.labels))
    info = {
        "payload_bits": kb,
        "code": code.name,
        "code_rate": kb / n,
        "modulation": "QPSK",
        "channel_uses": n // 2,
        "classifier": "student + stage-1 head at the transmitter",
        "clean_accuracy": float((cls == data.labels).mean()),
    }
    return pts, info


def feature_digital(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    code_factory: CodeFactory,
    m: int = 4,
    code_rate: float = 0.5,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """Student feature → PCA + scalar quantiser (designed on `train`) → polar code (rate
    `code_rate`, block length the largest power of two ≤ K·log2 M) → M-QAM; the receiver
    reconstructs the feature and classifies it with the student's own head."""
    bps = int(math.log2(m))
    n = 2 ** int(math.floor(math.log2(rate * bps)))
    kb = int(n * code_rate)
    code = code_factory("polar", n=n, k=kb)
    q = choose_quantizer(bundle, student_features(bundle, train.images), train.labels, kb)
    bits = q.encode(student_features(bundle, data.images))
    clean = student_head_classes(bundle, q.decode(bits))
    pts = []
    for s in snrs:
        got = student_head_classes(bundle, q.decode(coded_link(bits, code, m, channel, s, seed)))
        pts.append(point({"snr_db": float(s)}, got == data.labels))
    info = {
        "payload_bits": kb,
        "quantiser": f"PCA {q.pca.basis.shape[0]} dims × {q.bits} bits (equiprobable, Gray)",
        "code": code.name,
        "code_rate": kb / n,
        "modulation": f"{m}-QAM" if m > 4 else "QPSK",
        "channel_uses": n // bps,
        "quantised_clean_accuracy": float((clean == data.labels).mean()),
    }
    return pts, info


def image_digital(
    bundle: Bundle,
    data: ImageArrays,
    channel: str,
    snrs,
    code_factory: CodeFactory,
    quality: int = 50,
    alist: str = "n_1800_k_0902_gap_28.alist",
    max_images: int = 300,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """JPEG (Pillow, shared header) → LDPC → QPSK, one frame per image at the image's own length
    (it cannot fit K symbols); the receiver decodes the JPEG and classifies it with the student."""
    code = code_factory("ldpc", alist=alist)
    n_img = min(len(data), max_images)
    images, labels = data.images[:n_img], data.labels[:n_img]
    headers, scans = zip(*(jpeg_split(im, quality) for im in images))
    header = headers[0]
    if any(h != header for h in headers):
        raise RuntimeError("JPEG headers differ between images; cannot share them")
    nbits = [8 * len(s) for s in scans]
    f = max(math.ceil(b / code.k) for b in nbits)  # codewords per image (the longest scan)
    payload = np.zeros((n_img, f * code.k), np.uint8)
    for i, s in enumerate(scans):
        payload[i, : 8 * len(s)] = bytes_to_bits(s)
    rng = np.random.default_rng(seed)
    dec_imgs = [jpeg_join(header, s, bundle.image_shape) for s in scans]
    clean = _classify_images(bundle, dec_imgs, rng)
    pts = []
    dead = 0  # consecutive SNR points (descending) where no image got through
    skipped_below = None
    for s in sorted(snrs, reverse=True):
        if dead >= 2:  # LDPC at 25 iterations on hopeless frames is the slow part: stop measuring
            skipped_below = float(s) if skipped_below is None else skipped_below
            pts.append({"snr_db": float(s), "accuracy": 1.0 / len(bundle.classes)})
            continue
        got_bits = coded_link(payload, code, 4, channel, s, seed)
        rx = [
            jpeg_join(header, bits_to_bytes(got_bits[i, : nbits[i]]), bundle.image_shape)
            for i in range(n_img)
        ]
        ok = np.all(got_bits == payload, axis=1)
        dead = dead + 1 if not ok.any() else 0
        pred = _classify_images(bundle, rx, rng)
        pts.append(point({"snr_db": float(s)}, pred == labels))
    pts.sort(key=lambda p: p["snr_db"])
    mean_cw = float(np.mean([math.ceil(b / code.k) for b in nbits]))
    info = {
        "n": n_img,
        "jpeg_quality": quality,
        "scan_bytes_mean": float(np.mean([len(s) for s in scans])),
        "shared_header_bytes": len(header),
        "code": code.name,
        "code_rate": code.k / code.n,
        "modulation": "QPSK",
        "channel_uses": float(mean_cw * code.n / 2),
        "channel_uses_max": f * code.n // 2,
        "note": "cannot fit K; evaluated at its own bandwidth (channel_uses per image)",
        "not_measured_at_or_below_db": skipped_below,
        "not_measured_note": "chance level 1/C filled in below two measured SNRs where no frame "
        "decoded (LDPC decoding there is slow and the frame error rate is monotone in SNR)",
        "decoded_clean_accuracy": float((clean == labels).mean()),
    }
    return pts, info


def _classify_images(bundle: Bundle, imgs: list, rng: np.random.Generator) -> np.ndarray:
    """Student classes of decoded images; None (undecodable) → a uniform random class."""
    c = len(bundle.classes)
    ok = [i for i, im in enumerate(imgs) if im is not None]
    pred = rng.integers(0, c, len(imgs))
    if ok:
        feats = student_features(bundle, np.stack([imgs[i] for i in ok]))
        pred[ok] = student_head_classes(bundle, feats)
    return pred


def no_cat(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    seed: int = 0,
) -> tuple[list[dict], dict]:
    """The student feature sent directly as analog symbols, no CAT: the top 2K PCA coefficients
    (fitted on `train`; all D dims when D ≤ 2K) as K complex symbols, each image power-normalised;
    the receiver (MMSE-equalised symbols) rescales by the mean training norm, reconstructs the
    feature and classifies it with the student's own head."""
    ftr = student_features(bundle, train.images)
    pca = Pca.fit(ftr, 2 * rate)
    dims = pca.basis.shape[0]

    def to_symbols(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.zeros((len(feats), 2 * rate))
        c[:, :dims] = pca.project(feats)
        z = c[:, 0::2] + 1j * c[:, 1::2]
        scale = np.sqrt(np.mean(np.abs(z) ** 2, 1, keepdims=True))
        return (z / np.maximum(scale, 1e-12)).astype(np.complex64), scale

    _, tr_scale = to_symbols(ftr)
    scale = float(tr_scale.mean())
    sym, _ = to_symbols(student_features(bundle, data.images))
    ch = make_channel(channel)
    pts = []
    for s in snrs:
        out = apply_keyed(ch, torch.from_numpy(sym), float(s), np.arange(len(sym)), seed)
        y = out.symbols.numpy() * scale
        c = np.zeros((len(y), 2 * rate))
        c[:, 0::2], c[:, 1::2] = y.real, y.imag
        got = student_head_classes(bundle, pca.reconstruct(c[:, :dims]).astype(np.float32))
        pts.append(point({"snr_db": float(s)}, got == data.labels))
    info = {
        "channel_uses": rate,
        "pca_dims": dims,
        "feature_dim": int(ftr.shape[1]),
        "receiver": "MMSE-equalised symbols × mean training scale → PCA inverse → student head",
    }
    return pts, info


def run_baselines(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    names: list[str],
    code_factory: CodeFactory | None,
    seed: int = 0,
    accuracy_at_tx: float | None = None,
) -> tuple[dict, dict]:
    """({name: [{"snr_db", "accuracy"}]}, {name: info}) for each baseline in `names`."""
    global _CACHE_ON
    _CACHE_ON = True
    try:
        return _run_baselines(
            bundle, data, train, channel, snrs, rate, names, code_factory, seed, accuracy_at_tx
        )
    finally:
        _CACHE_ON = False
        _FEATURES.clear()


def _run_baselines(
    bundle, data, train, channel, snrs, rate, names, code_factory, seed, accuracy_at_tx
) -> tuple[dict, dict]:
    run = BaselineRun(bundle, data, train, channel, snrs, rate, code_factory, seed, accuracy_at_tx)
    curves: dict = {}
    info: dict = {}
    for name in names:
        log.info("baseline %s on %s K=%d", name, channel, rate)
        curves[name], info[name] = BASELINES.get(name).run(run)  # unknown: lists the names
    return curves, info


@dataclass(frozen=True)
class BaselineRun:
    """What every baseline runner is given: the methods compared at one (channel, K) see the same
    test images, SNRs and seed."""

    bundle: Bundle
    data: ImageArrays
    train: ImageArrays
    channel: str
    snrs: list[float]
    rate: int
    code_factory: CodeFactory | None
    seed: int
    accuracy_at_tx: float | None


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: `run(BaselineRun) -> (points, info)`; `digital` ones need a
    channel-code factory (gr-fec, handed in from the GNU Radio side)."""

    run: Callable[[BaselineRun], tuple[list[dict], dict]]
    digital: bool = False


#: The baseline registry, in report order (`--baselines all`): a new baseline is its function plus
#: a registered runner below.
BASELINES: Registry[Baseline] = Registry("baseline")


def _baseline(name: str, digital: bool = False):
    """Register the decorated `run(BaselineRun)` as baseline `name`."""

    def deco(run: Callable[[BaselineRun], tuple[list[dict], dict]]):
        BASELINES.register(name, Baseline(run, digital))
        return run

    return deco


@_baseline("no-cat")
def _no_cat(r: BaselineRun):
    return no_cat(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.seed)


@_baseline("deepjscc-cnn")
def _deepjscc_cnn(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import deepjscc_cnn

    steps = DEEPJSCC_STEPS
    return deepjscc_cnn(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, steps, seed=r.seed)


@_baseline("single-stage")
def _single_stage(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import single_stage

    steps = SINGLE_STAGE_STEPS
    return single_stage(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, steps, seed=r.seed)


@_baseline("teacher-over-channel")
def _teacher_over_channel(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import teacher_over_channel

    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, TEACHER_CAT_STEPS)
    return teacher_over_channel(*args, seed=r.seed)


@_baseline("label-digital", digital=True)
def _label_digital(r: BaselineRun):
    return label_digital(r.bundle, r.data, r.channel, r.snrs, r.rate, r.code_factory, r.seed)


@_baseline("feature-digital", digital=True)
def _feature_digital_qpsk(r: BaselineRun):
    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.code_factory)
    return feature_digital(*args, 4, 0.5, r.seed)


@_baseline("feature-digital-16qam", digital=True)
def _feature_digital_16qam(r: BaselineRun):
    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.code_factory)
    return feature_digital(*args, 16, 0.5, r.seed)


@_baseline("image-digital", digital=True)
def _image_digital(r: BaselineRun):
    return image_digital(r.bundle, r.data, r.channel, r.snrs, r.code_factory, seed=r.seed)


@_baseline("capacity-bound")
def _capacity_bound(r: BaselineRun):
    c = len(r.bundle.classes)
    acc = r.accuracy_at_tx if r.accuracy_at_tx is not None else 1.0
    pts = capacity_bound_curve(r.snrs, r.rate, c, r.channel, acc)
    inf = {
        "snr_db_threshold": capacity_snr_db(r.rate, c),
        "accuracy_at_tx": acc,
        "model": "outage bound (block Rayleigh)"
        if r.channel.startswith("rayleigh")
        else "AWGN step at K·log2(1+SNR) = log2 C",
        "meaning": "SNR above which the label can be sent with vanishing error (long "
        "codes); not an accuracy upper bound at finite K: below it a short code still "
        "delivers the right label part of the time (label-digital lies above the step)",
    }
    return pts, inf


ALL = BASELINES.names()
KNOWN = ALL
DIGITAL = tuple(name for name, b in BASELINES.items() if b.digital)
