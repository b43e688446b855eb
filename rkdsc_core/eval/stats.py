"""Intervals and paired tests for the evaluation JSON (issue 19).

Every measured accuracy gets a 95% Wilson score interval (`ci95`); every baseline point measured on
the same images and keyed channel draws as RKD-SC gets `p_vs_rkdsc`, the two-sided exact McNemar
test (a binomial test on the discordant pairs, `scipy.stats.binomtest`); "wins / ties / losses"
are read from those p-values at 5%, never from raw differences.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

ALPHA = 0.05
INTERVAL = "Wilson score, 95%"
TEST = "exact McNemar (two-sided binomial test on discordant pairs), paired per image"


def wilson(correct: int, n: int) -> list[float]:
    """95% Wilson score interval [lo, hi] of `correct` successes out of `n`."""
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value of two methods' bool [N] per-image correctness (paired)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired results must have one shape, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def finish_point(p: dict) -> dict:
    """A sweep point with its per-image `correct` (bool [N]) → the JSON point: `correct` replaced
    by `ci95` (and `n` when it differs from the run's). Points without `correct` pass unchanged."""
    p = dict(p)
    correct = p.pop("correct", None)
    if correct is not None:
        p["ci95"] = wilson(int(np.sum(correct)), len(correct))
    return p


def finish(points: list[dict]) -> list[dict]:
    """`finish_point` of each point."""
    return [finish_point(p) for p in points]


def verdict(p_value: float, rkdsc_acc: float, other_acc: float) -> str:
    """'win' / 'loss' for RKD-SC when the paired test rejects at 5%, else 'tie'."""
    if p_value >= ALPHA:
        return "tie"
    return "win" if rkdsc_acc > other_acc else "loss"


def compare(rkdsc: list[dict], baseline: list[dict]) -> list[dict]:
    """Baseline points (with `correct`) → JSON points with `ci95`, `p_vs_rkdsc` and
    `vs_rkdsc` (the verdict from RKD-SC's side) wherever RKD-SC has a point at the same SNR;
    `ci95` and `p_vs_rkdsc` are null for points with no per-image results (the capacity bound,
    image-digital's chance level where it was not measured): every point carries both keys.

    A baseline measured on fewer images (the first n) is paired with RKD-SC's first n.
    """
    by_snr = {p["snr_db"]: p for p in rkdsc}
    out = []
    for p in baseline:
        ref = by_snr.get(p["snr_db"])
        q = finish_point(p)
        if ref is not None and "correct" in p and "correct" in ref:
            b = np.asarray(p["correct"], bool)
            a = np.asarray(ref["correct"], bool)[: len(b)]
            q["p_vs_rkdsc"] = mcnemar_p(a, b)
            q["vs_rkdsc"] = verdict(q["p_vs_rkdsc"], float(a.mean()), float(b.mean()))
        else:  # an analytic curve, or a point filled in without measuring: nothing to test
            q.setdefault("ci95", None)
            q["p_vs_rkdsc"] = None
        out.append(q)
    return out


def summary(baselines: dict[str, list[dict]]) -> dict[str, str]:
    """{name: "RKD-SC wins at … dB, ties at …, loses at …"} from the `vs_rkdsc` verdicts."""
    text = {}
    for name, pts in baselines.items():
        groups: dict[str, list[str]] = {"win": [], "tie": [], "loss": []}
        for p in pts:
            if "vs_rkdsc" in p:
                groups[p["vs_rkdsc"]].append(f"{p['snr_db']:g}")
        if not any(groups.values()):
            continue
        parts = [
            f"{word} at {', '.join(groups[key])} dB"
            for key, word in (("win", "wins"), ("tie", "ties"), ("loss", "loses"))
            if groups[key]
        ]
        text[name] = f"RKD-SC {'; '.join(parts)} (paired exact McNemar test at the 5% level)"
    return text
