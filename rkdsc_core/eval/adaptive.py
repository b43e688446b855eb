"""Rate adaptation, measured offline (issue 18): the bundle's rate table and IR stopping rule from
validation images, and fixed-K / SNR-adaptive / IR points on the same images and channel draws.

Everything runs the numpy runtime (`Transmitter.encode_raw`, `Receiver.decode`) and the keyed
draws of `rkdsc_core.adapt`, with perfect-CSI equalisation as `rkdsc eval` (DESIGN.md §3).
"""

from __future__ import annotations

import logging

import numpy as np

from rkdsc_core.adapt import (
    StopRule,
    assemble_prefix,
    fit_stop_rule,
    increment_bounds,
    ir_schedule,
    keyed_channel,
    split_increments,
)
from rkdsc_core.channels import mmse_equalize, noise_variance
from rkdsc_core.data.datasets import ImageArrays, held_out, load_dataset
from rkdsc_core.runtime import Bundle

log = logging.getLogger(__name__)

CHANNELS = ("awgn", "rayleigh")  # block fading: one h per image, what the rate table covers
CALIBRATION_SNRS = tuple(float(s) for s in np.arange(-12.5, 22.6, 2.5))
CALIBRATION_KS = (4, 8, 12, 16, 24, 32, 48)

#: What the manifest's rate-adaptation entries mean (written into the manifest beside them).
RATE_ADAPTATION_DOC = {
    "rate_table": (
        "accuracy[i][j] of K = rates[i] through the channel at snr_db[j] (Es/N0, dB; perfect "
        "CSI; block fading for rayleigh), measured on the n validation images stage 2 held out "
        "of the training split (never the test split); clean_accuracy is the student's on them."
    ),
    "choose_rate": (
        "Bundle.choose_rate(snr_db, target, channel='awgn'): the smallest K whose table accuracy "
        "at the largest tabulated SNR <= snr_db reaches target * clean_accuracy (target is a "
        "fraction of clean accuracy, e.g. 0.99); the largest K when none does or snr_db is below "
        "the table. The SNR-adaptive transmitter (--adapt snr) calls it with the SNR fed back."
    ),
    "ir_stop_rule": (
        "Incremental redundancy: after k symbols the receiver stops asking when gain[k row]"
        "[mean effective SNR bin][softmax margin bin] <= 1 - confidence, gain being P(right at "
        "k_max) - P(right at k) measured on the validation images (awgn and block rayleigh, "
        "-12.5..22.5 dB in 2.5 dB steps, 2 pseudo-samples of gain 0.1 per cell), made "
        "non-increasing in the margin (top-1 minus top-2 softmax). Bundle.stop_rule()."
    ),
}


def validation_images(bundle: Bundle, data_root: str | None = None) -> ImageArrays:
    """The images stage 2 held out of the bundle's training split (its recorded config)."""
    cfg = bundle.manifest.get("provenance", {}).get("config", {})
    data, s2 = cfg.get("data", {}), cfg.get("stage2", {})
    name = bundle.manifest["dataset"]["name"]
    root = data_root or data.get("root")
    train = load_dataset(name, "train", root, limit=data.get("train_limit"))
    return held_out(train, float(data.get("val_fraction", 0.1)), s2.get("val_limit"))


def encode_raw_all(bundle: Bundle, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """complex64 [N, K_max] raw encoder outputs (transmitter told no SNR)."""
    tx = bundle.transmitter(bundle.k_max)
    return np.concatenate(
        [tx.encode_raw(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )


def receive(raw, index, channel, snr_db, schedule, seed, bundle, upto=None):
    """Send IR increments of `raw` complex [B, K_max] (images `index`) through the keyed channel
    and decode every prefix of `schedule` (or the first `upto` increments).

    Returns (logits float32 [J, B, C], mean effective SNR dB float32 [J, B]).
    """
    bounds = increment_bounds(tuple(schedule))[:upto]
    blocks, gains = split_increments(raw[:, : bounds[-1][1]], schedule[: len(bounds)])
    n0 = noise_variance(float(snr_db))
    rx = bundle.receiver()
    eq, eff, logits, snr_mean = [], [], [], []
    for (a, _), blk in zip(bounds, blocks):
        y, h = keyed_channel(blk, index, a, channel, snr_db, seed)
        x_hat, e = mmse_equalize(y, h, n0)
        eq.append(x_hat)
        eff.append(e)
        x, s = assemble_prefix(eq, eff, gains)
        logits.append(_decode(rx, x, s))
        snr_mean.append(np.concatenate(eff, 1).mean(1))
    return np.stack(logits), np.stack(snr_mean).astype(np.float32)


def _decode(rx, x: np.ndarray, snr: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    bs = batch_size
    return np.concatenate([rx.decode(x[i : i + bs], snr[i : i + bs]) for i in range(0, len(x), bs)])


def rate_table(bundle: Bundle, data: ImageArrays, channels, snrs, seed: int = 0) -> dict:
    """{channel: {snr_db, rates, accuracy [rate][snr], clean_accuracy, n, split}}: accuracy of
    every trained K through each channel (keyed draws), on `data` (validation images)."""
    raw = encode_raw_all(bundle, data.images)
    index = np.arange(len(data))  # image i's draws are keyed by i, as the loopback keys them
    clean = student_accuracy(bundle, data)
    table = {}
    for ch in channels:
        acc = [[0.0] * len(snrs) for _ in bundle.rates]
        for j, s in enumerate(snrs):
            for i, k in enumerate(bundle.rates):
                logits, _ = receive(raw, index, ch, float(s), (k,), seed, bundle)
                acc[i][j] = round(float((logits[-1].argmax(1) == data.labels).mean()), 4)
        table[ch] = {
            "snr_db": [float(s) for s in snrs],
            "rates": list(bundle.rates),
            "accuracy": acc,
            "clean_accuracy": clean,
            "n": len(data),
            "split": data.split,
        }
    return table


def student_accuracy(bundle: Bundle, data: ImageArrays, batch_size: int = 500) -> float:
    """Clean (no channel) accuracy of the student with its own head on `data`."""
    import torch

    from rkdsc_core.data.transforms import to_tensor

    correct = 0
    with torch.inference_mode():
        for i in range(0, len(data), batch_size):
            x = to_tensor(data.images[i : i + batch_size], bundle.norm)
            logits = bundle.student(x)[1]
            correct += int((logits.argmax(1).numpy() == data.labels[i : i + batch_size]).sum())
    return round(correct / len(data), 4)


def calibrate_stop_rule(
    bundle: Bundle,
    data: ImageArrays,
    channels=CHANNELS,
    snrs=CALIBRATION_SNRS,
    ks=CALIBRATION_KS,
    seed: int = 1,
) -> StopRule:
    """The IR stopping rule's table from `data` (validation images): every image decoded at each
    k of `ks` below K_max and at K_max, through each channel at each SNR (keyed draws)."""
    ks = tuple(k for k in ks if k < bundle.k_max) or (max(1, bundle.k_max // 2),)
    raw = encode_raw_all(bundle, data.images)
    index = np.arange(len(data))
    schedule = ks + (bundle.k_max,)
    cols = {"k": [], "logits": [], "snr": [], "gain": []}
    for ch in channels:
        for s in snrs:
            logits, snr_mean = receive(raw, index, ch, float(s), schedule, seed, bundle)
            right_at_kmax = (logits[-1].argmax(1) == data.labels).astype(np.float64)
            for j, k in enumerate(ks):
                cols["k"].append(np.full(len(data), k))
                cols["logits"].append(logits[j])
                cols["snr"].append(snr_mean[j])
                cols["gain"].append(right_at_kmax - (logits[j].argmax(1) == data.labels))
    c = {key: np.concatenate(v) for key, v in cols.items()}
    return fit_stop_rule(c["k"], c["logits"], c["snr"], c["gain"], tuple(ks), bundle.k_max)


def feedback_losses(seed: int, channel: str, snr_db: float, n: int, slots: int, p: float):
    """bool [n, slots]: which feedback messages the link loses (seeded by the point's key)."""
    from rkdsc_core.channels.draws import channel_key, snr_key

    if p <= 0:
        return np.zeros((n, slots), bool)
    key = (channel_key("feedback"), channel_key(channel), snr_key(snr_db))
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))
    return rng.random((n, slots)) < p


def simulate_point(
    bundle: Bundle,
    raw: np.ndarray,
    labels: np.ndarray,
    channel: str,
    snr_db: float,
    mode: str = "none",
    rate: int = 16,
    k0: int = 4,
    step: int | None = None,
    confidence: float = 0.98,
    target: float = 0.99,
    delay: int = 0,
    loss: float = 0.0,
    seed: int = 0,
    rule: StopRule | None = None,
    prefixes: tuple[np.ndarray, np.ndarray] | None = None,
    index: np.ndarray | None = None,
) -> dict:
    """One point of `rkdsc loopback --adapt`, offline: images `raw` complex [N, K_max] with
    `labels` int [N] (image i has draw index i) through `channel` at `snr_db`.

    mode "none": K = `rate`. "snr": each image's K is `choose_rate` of the last SNR the receiver
    fed back (`delay` images late, each message lost with probability `loss`; K = `rate` before
    any). "ir": increments of `ir_schedule(k0, rate, step)` until the stopping rule holds at
    `confidence`, a request is lost (the receiver decides with what it has) or K = `rate`.
    `index`: the keys of the images' draws (default 0..N-1, as `rkdsc loopback` keys them).
    `prefixes`: "ir": `receive(raw, …, schedule, …)` already computed (shared by several
    confidences). Returns {accuracy, mean_channel_uses, requests_per_image, ...}.
    """
    n = len(labels)
    index = np.arange(n) if index is None else np.asarray(index)
    if mode == "none":
        logits, _ = receive(raw, index, channel, snr_db, (rate,), seed, bundle)
        correct = logits[-1].argmax(1) == labels
        return _point(correct, np.full(n, rate), np.zeros(n), np.zeros(n))
    if mode == "snr":
        lost = feedback_losses(seed, channel, snr_db, n, 1, loss)[:, 0]
        k = np.empty(n, np.int64)
        heard = None
        for i in range(n):
            j = i - delay - 1  # the newest feedback that has arrived
            if j >= 0 and not lost[j]:
                heard = snr_db  # the receiver reports the channel's Es/N0 it measured
            k[i] = rate if heard is None else min(rate, bundle.choose_rate(heard, target, channel))
        correct = np.zeros(n, bool)
        for kk in np.unique(k):
            sel = k == kk
            logits, _ = receive(raw[sel], index[sel], channel, snr_db, (int(kk),), seed, bundle)
            correct[sel] = logits[-1].argmax(1) == labels[sel]
        point = _point(correct, k, np.zeros(n), np.ones(n))
        point["k_histogram"] = {str(int(kk)): int((k == kk).sum()) for kk in np.unique(k)}
        return point
    if mode != "ir":
        raise ValueError(f"adapt mode must be none, snr or ir, got {mode!r}")
    rule = rule or bundle.stop_rule()
    schedule = ir_schedule(k0, rate, step)
    logits, snr_mean = prefixes or receive(raw, index, channel, snr_db, schedule, seed, bundle)
    lost = feedback_losses(seed, channel, snr_db, n, len(schedule), loss)
    final = np.full(n, len(schedule) - 1)
    requests = np.zeros(n)
    open_ = np.ones(n, bool)
    for j, k in enumerate(schedule[:-1]):
        stop = rule.stop(k, logits[j], snr_mean[j], confidence)
        ends = open_ & (stop | lost[:, j])
        requests += open_ & ~stop
        final[ends] = j
        open_ &= ~ends
    decided = logits[final, np.arange(n)].argmax(1)
    point = _point(decided == labels, np.asarray(schedule)[final], requests, final + 1)
    point["schedule"] = list(schedule)
    point["stopped_at"] = {str(k): int((final == j).sum()) for j, k in enumerate(schedule)}
    return point


def _point(correct, uses, requests, feedback) -> dict:
    return {
        "accuracy": float(np.mean(correct)),
        "mean_channel_uses": float(np.mean(uses)),
        "requests_per_image": float(np.mean(requests)),
        "feedback_per_image": float(np.mean(feedback)),
    }
