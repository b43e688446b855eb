"""One of the CAT's ablations (issue 19, item 6), evaluation only: the encoder told the channel's
SNR versus not told it (what every other evaluation does), on the same images and the same keyed
channel draws, with the exact paired McNemar test between the two.

Usage: python scripts/cat_ablation_snr.py --n 2000 --json results/cat_ablation_snr.json
"""

from __future__ import annotations

import argparse
import time

from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.eval import stats
from rkdsc_core.eval.harness import correct_through_channel, encode_all
from rkdsc_core.provenance import write_report
from rkdsc_core.runtime import load_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=16)
    ap.add_argument("--snr", default="-10,-5,0,5,10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    snrs = [float(s) for s in args.snr.split(",")]
    bundle = load_bundle(args.bundle)
    data = load_dataset(bundle.manifest["dataset"]["name"], "test", limit=args.n)
    t0 = time.time()
    unknown = encode_all(bundle, data.images, args.rate)
    rows = []
    for s in snrs:
        known = encode_all(bundle, data.images, args.rate, snr_db=s)
        for ch in ("awgn", "rayleigh"):
            a = correct_through_channel(bundle, unknown, data.labels, ch, s, args.seed)
            b = correct_through_channel(bundle, known, data.labels, ch, s, args.seed)
            row = {
                "channel": ch,
                "snr_db": s,
                "snr_unknown": {"accuracy": float(a.mean()), "ci95": stats.wilson(a.sum(), len(a))},
                "snr_told": {"accuracy": float(b.mean()), "ci95": stats.wilson(b.sum(), len(b))},
                "p_told_vs_unknown": stats.mcnemar_p(a, b),
            }
            rows.append(row)
            print(
                f"{ch} {s:g} dB: unknown {a.mean():.4f}  told {b.mean():.4f}  "
                f"p={row['p_told_vs_unknown']:.3g}",
                flush=True,
            )
    rep = {
        "bundle": str(bundle.path),
        "n": len(data),
        "rate": args.rate,
        "rows": rows,
        "note": "the encoder is told the channel's average SNR (Es/N0); the decoder always gets "
        "the per-symbol effective SNR; same images and keyed channel draws for both",
        "statistics": {"ci95": stats.INTERVAL, "p_told_vs_unknown": stats.TEST},
    }
    write_report(args.json, rep, args, t0)


if __name__ == "__main__":
    main()
