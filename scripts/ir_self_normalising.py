"""Does incremental redundancy need its per-increment gain (issue 18)? The waveform header has no
room for one real per image, so waveform increments are self-normalising: each goes out at unit
power and the receiver decodes them as if of equal gain. This compares, offline on validation
images with the keyed AWGN draws, IR decoded with the true gains, with gains quantised to 4 bits
(a header field's worth) and with no gains at all (what the waveform does), next to fixed K = 16.

    .venv/bin/python scripts/ir_self_normalising.py [--n 1000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import rkdsc_core.eval.adaptive as A
from rkdsc_core.adapt import ir_schedule, split_increments
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle


def quantised(bits: int):
    """split_increments with its gains replaced: 0 bits → all 1, else log2 rounded to a grid of
    2 / 2^bits octaves in [−1, 1)."""

    def split(raw, schedule):
        blocks, gains = ORIGINAL(raw, schedule)
        if bits == 0:
            return blocks, np.ones_like(gains)
        step = 2.0 / (1 << bits)
        lo, hi = -(1 << bits) // 2, (1 << bits) // 2 - 1
        q = np.clip(np.round(np.log2(gains) / step), lo, hi) * step
        return blocks, (2**q).astype(np.float32)

    return split


ORIGINAL = A.split_increments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="validation images")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    b = load_bundle("default")
    data = A.validation_images(b)
    imgs, labels = data.images[: args.n], data.labels[: args.n]
    raw = A.encode_raw_all(b, imgs)
    schedule = ir_schedule(4, 64)
    _, g = split_increments(raw, schedule)
    out = {
        "n": len(labels),
        "split": data.split,
        "schedule": list(schedule),
        "gain_percentiles_5_50_95": [
            np.percentile(g[:, j], [5, 50, 95]).round(3).tolist() for j in range(g.shape[1])
        ],
        "points": [],
    }
    for snr in (0.0, 10.0):
        point = {"snr_db": snr}
        for name, fn in (
            ("true_gains", ORIGINAL),
            ("gains_4_bits", quantised(4)),
            ("no_gains", quantised(0)),
        ):
            A.split_increments = fn
            p = A.simulate_point(b, raw, labels, "awgn", snr, "ir", 64, 4, seed=0)
            point[name] = {"accuracy": p["accuracy"], "mean_symbols": p["mean_channel_uses"]}
        A.split_increments = ORIGINAL
        point["fixed_k16"] = A.simulate_point(b, raw, labels, "awgn", snr, "none", 16, seed=0)[
            "accuracy"
        ]
        out["points"].append(point)
        print(json.dumps(point), flush=True)
    out["provenance"] = provenance(config=vars(args), seed=0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
