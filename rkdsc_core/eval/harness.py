"""Offline evaluation through the numpy runtime: clean accuracy, accuracy vs SNR and vs rate.

The same `Transmitter.encode` / `Receiver.decode` path that the GNU Radio blocks use; the channel is
the differentiable one of `rkdsc_core.channels` with perfect-CSI equalisation (DESIGN.md §3).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from rkdsc_core.bundle import count_params
from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.runtime import Bundle

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


def accuracy_through_channel(
    bundle: Bundle,
    symbols: np.ndarray,
    labels: np.ndarray,
    channel: str,
    snr_db: float,
    seed: int = 0,
    batch_size: int = 1000,
) -> float:
    """Send `symbols` complex64 [N, K] through `channel` at `snr_db`, equalise with perfect CSI,
    decode with the effective per-symbol SNR; returns top-1 accuracy."""
    from rkdsc_core.channels import make_channel

    ch = make_channel(channel)
    gen = torch.Generator().manual_seed(seed)
    rx = bundle.receiver()
    correct = 0
    for sl in _batches(len(symbols), batch_size):
        x = torch.from_numpy(symbols[sl])
        out = ch(x, torch.full((x.shape[0],), float(snr_db)), generator=gen)
        cls, _ = rx.classify(out.symbols.numpy(), out.snr_eff_db.numpy())
        correct += int((cls == labels[sl]).sum())
    return correct / len(symbols)


def snr_sweep(
    bundle: Bundle, data: ImageArrays, channel: str, snrs, rate: int, seed: int = 0
) -> list[dict]:
    """[{"snr_db", "accuracy"}] over `snrs` for one channel and rate."""
    sym = encode_all(bundle, data.images, rate)
    return [
        {
            "snr_db": float(s),
            "accuracy": accuracy_through_channel(bundle, sym, data.labels, channel, s, seed + i),
        }
        for i, s in enumerate(tqdm(list(snrs), desc=f"{channel} K={rate}", leave=False))
    ]


def rate_sweep(
    bundle: Bundle, data: ImageArrays, channel: str, snr_db: float, rates, seed: int = 0
) -> list[dict]:
    """[{"rate", "accuracy"}] at one SNR for every K in `rates`."""
    return [
        {
            "rate": int(k),
            "accuracy": accuracy_through_channel(
                bundle, encode_all(bundle, data.images, k), data.labels, channel, snr_db, seed
            ),
        }
        for k in rates
    ]
