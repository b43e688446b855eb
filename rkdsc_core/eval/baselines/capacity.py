"""The capacity bound of the label (a baseline with no code): the SNR where K·log2(1+SNR) = log2 C,
and the accuracy of an ideal label link around it.
"""

from __future__ import annotations

import math

from rkdsc_core.channels import db_to_linear, linear_to_db
from rkdsc_core.eval.baselines.features import BaselineRun


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


def capacity_bound(r: BaselineRun) -> tuple[list[dict], dict]:
    """The capacity-bound baseline: `capacity_bound_curve` at the run's K, with what it means."""
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
