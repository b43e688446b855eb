"""Two bundles on the same test images and the same keyed channel draws, point by point: accuracy
with 95% Wilson intervals and the exact paired McNemar p-value of B against A (issue 19).

Usage: python scripts/compare_bundles.py --a default --b runs/smallenc/bundle \
    --channel awgn --channel rayleigh --snr=-5,0,5 --rate 4,16,64 --n 10000 --json out.json
"""

from __future__ import annotations

import argparse
import time

from rkdsc_core.bundle import count_params
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.eval import stats
from rkdsc_core.eval.harness import snr_sweep
from rkdsc_core.provenance import write_report
from rkdsc_core.runtime import load_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="default")
    ap.add_argument("--b", required=True)
    ap.add_argument("--channel", action="append", required=True)
    ap.add_argument("--snr", required=True, help="comma-separated dB")
    ap.add_argument("--rate", default="16", help="comma-separated K")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    snrs = [float(s) for s in args.snr.split(",")]
    rates = [int(k) for k in args.rate.split(",")]
    a, b = load_bundle(args.a), load_bundle(args.b)
    data = load_dataset(a.manifest["dataset"]["name"], "test", limit=args.n)
    t0 = time.time()
    rows = []
    for ch in args.channel:
        for k in rates:
            pa = snr_sweep(a, data, ch, snrs, k, args.seed)
            pb = snr_sweep(b, data, ch, snrs, k, args.seed)
            for x, y in zip(pa, pb):
                row = {
                    "channel": ch,
                    "rate": k,
                    "snr_db": x["snr_db"],
                    "a": stats.finish_point(x),
                    "b": stats.finish_point(y),
                    "b_minus_a": y["accuracy"] - x["accuracy"],
                    "p_b_vs_a": stats.mcnemar_p(x["correct"], y["correct"]),
                }
                rows.append(row)
                print(
                    f"{ch} K={k} {x['snr_db']:g} dB: A {x['accuracy']:.4f}  B {y['accuracy']:.4f}"
                    f"  B-A {100 * row['b_minus_a']:+.2f} pt  p={row['p_b_vs_a']:.3g}",
                    flush=True,
                )
    rep = {
        "a": str(a.path),
        "b": str(b.path),
        "n": len(data),
        "sizes": {
            name: {
                "transmitter_params": count_params(bun.student) + count_params(bun.cat.encoder),
                "receiver_params": count_params(bun.cat.decoder) + count_params(bun.head),
            }
            for name, bun in (("a", a), ("b", b))
        },
        "rows": rows,
        "statistics": {"ci95": stats.INTERVAL, "p_b_vs_a": stats.TEST},
    }
    write_report(args.json, rep, args, t0)


if __name__ == "__main__":
    main()
