"""Offline evaluation through the numpy runtime: clean accuracy, accuracy vs SNR and vs rate.

The same `Transmitter.encode` / `Receiver.decode` path that the GNU Radio blocks use; the channel is
the differentiable one of `rkdsc_core.channels` with perfect-CSI equalisation (DESIGN.md §3).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params

log = logging.getLogger(__name__)

DEFAULT_SNRS = tuple(range(-10, 25, 2))


def _batches(n: int, bs: int):
    for i in range(0, n, bs):
        yield slice(i, min(i + bs, n))


def clean_accuracy(bundle: Bundle, data: ImageArrays, batch_size: int = 500) -> dict:
    """Accuracy of teacher and of student + head with no channel, measured now from the weights."""
    n = len(data)
    correct_s = correct_t = 0
    with torch.inference_mode():
        for sl in tqdm(list(_batches(n, batch_size)), desc="clean eval", leave=False):
            x = to_tensor(data.images[sl], bundle.norm)
            _, logits_s = bundle.student(x)  # the student's own (stage-1) head, no channel
            correct_s += int((logits_s.argmax(1).numpy() == data.labels[sl]).sum())
            correct_t += int((bundle.teacher.logits(x).argmax(1).numpy() == data.labels[sl]).sum())
    return {
        "clean_accuracy": correct_s / n,
        "teacher_accuracy": correct_t / n,
        "student_params": count_params(bundle.student),
        "teacher_params": count_params(bundle.teacher),
        "cat_params": count_params(bundle.cat),
        "head_params": count_params(bundle.head),
    }


def encode_all(
    bundle: Bundle,
    images: np.ndarray,
    rate: int,
    batch_size: int = 500,
    snr_db: float | None = None,
) -> np.ndarray:
    """complex64 [N, rate] symbols of every image (transmitter without SNR feedback by default)."""
    tx = bundle.transmitter(rate)
    return np.concatenate(
        [tx.encode(images[sl], snr_db) for sl in _batches(len(images), batch_size)]
    )


def correct_through_channel(
    bundle: Bundle,
    symbols: np.ndarray,
    labels: np.ndarray,
    channel: str,
    snr_db: float,
    seed: int = 0,
    batch_size: int = 1000,
) -> np.ndarray:
    """Send `symbols` complex64 [N, K] of images 0…N−1 through `channel` at `snr_db` with the
    keyed draws (`channels.draws`), equalise with perfect CSI, decode with the effective
    per-symbol SNR; returns bool [N], True where the class is right."""
    from rkdsc_core.channels import apply_keyed, make_channel

    ch = make_channel(channel)
    rx = bundle.receiver()
    correct = np.zeros(len(symbols), bool)
    for sl in _batches(len(symbols), batch_size):
        x = torch.from_numpy(symbols[sl])
        out = apply_keyed(ch, x, snr_db, np.arange(sl.start, sl.stop), seed)
        cls, _ = rx.classify(out.symbols.numpy(), out.snr_eff_db.numpy())
        correct[sl] = cls == labels[sl]
    return correct


def snr_sweep(
    bundle: Bundle, data: ImageArrays, channel: str, snrs, rate: int, seed: int = 0
) -> list[dict]:
    """[{"snr_db", "accuracy", "correct"}] over `snrs` for one channel and rate; `correct` is
    bool [N] per image (for intervals and paired tests; `eval.stats` turns it into JSON)."""
    sym = encode_all(bundle, data.images, rate)
    return [
        point(
            {"snr_db": float(s)},
            correct_through_channel(bundle, sym, data.labels, channel, s, seed),
        )
        for s in tqdm(list(snrs), desc=f"{channel} K={rate}", leave=False)
    ]


def rate_sweep(
    bundle: Bundle, data: ImageArrays, channel: str, snr_db: float, rates, seed: int = 0
) -> list[dict]:
    """[{"rate", "accuracy", "correct"}] at one SNR for every K in `rates` (the same keyed draws
    as `snr_sweep`, so a point both sweeps share gives the same accuracy)."""
    return [
        point(
            {"rate": int(k)},
            correct_through_channel(
                bundle, encode_all(bundle, data.images, k), data.labels, channel, snr_db, seed
            ),
        )
        for k in rates
    ]


def point(fields: dict, correct: np.ndarray) -> dict:
    """A sweep point: `fields` + accuracy + the per-image bool [N] `correct`."""
    return {**fields, "accuracy": float(np.mean(correct)), "correct": np.asarray(correct, bool)}
