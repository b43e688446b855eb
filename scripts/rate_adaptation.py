"""Accuracy vs mean channel uses per image (issue 18): fixed K, SNR-chosen K and incremental
redundancy at a few confidences, over AWGN and block Rayleigh, on the same test images and the
same keyed channel draws (the offline path of `rkdsc loopback --phy symbol --adapt`).

    .venv/bin/python scripts/rate_adaptation.py [--n 2000] [--json results/rate_adaptation.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from rkdsc_core.adapt import ir_schedule
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.eval.adaptive import encode_raw_all, receive, simulate_point
from rkdsc_core.outputs import write_json
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle


def measure(args) -> dict:
    bundle = load_bundle(args.bundle)
    # the images `rkdsc loopback --n` sends (a seeded class-balanced subset); as there, image i
    # of the subset has the draws of index i
    data = load_dataset(bundle.manifest["dataset"]["name"], "test").subset(args.n)
    raw = encode_raw_all(bundle, data.images)
    rule = bundle.stop_rule()
    schedule = ir_schedule(args.k0, args.k_max)
    points = []
    for ch in args.channels:
        for snr in args.snrs:
            t0 = time.monotonic()
            row = {"channel": ch, "snr_db": snr, "fixed": {}, "ir": {}}
            for k in [k for k in bundle.rates if k <= args.k_max]:  # the trained K
                row["fixed"][str(k)] = simulate_point(bundle, raw, data.labels, ch, snr, "none", k)
            row["snr"] = simulate_point(
                bundle,
                raw,
                data.labels,
                ch,
                snr,
                "snr",
                args.k_max,
                target=args.target,
            )
            pre = receive(raw, np.arange(len(raw)), ch, snr, schedule, 0, bundle)
            for c in args.confidences:
                row["ir"][str(c)] = simulate_point(
                    bundle,
                    raw,
                    data.labels,
                    ch,
                    snr,
                    "ir",
                    args.k_max,
                    k0=args.k0,
                    confidence=c,
                    rule=rule,
                    prefixes=pre,
                )
            points.append(row)
            best = row["ir"][str(args.confidences[len(args.confidences) // 2])]
            k_ref = str(min(16, args.k_max))
            print(
                f"{ch} {snr:g} dB: fixed K={k_ref} {row['fixed'][k_ref]['accuracy']:.4f}; "
                f"IR {best['accuracy']:.4f} at {best['mean_channel_uses']:.2f} symbols "
                f"({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    return {
        "bundle": str(bundle.path),
        "dataset": bundle.manifest["dataset"]["name"],
        "split": "test",
        "n": len(data),
        "k_max": args.k_max,
        "k0": args.k0,
        "ir_schedule": list(schedule),
        "snr_target": args.target,
        "draws": "keyed by (seed 0, channel, SNR, image index); perfect CSI",
        "points": points,
        "provenance": provenance(config=vars(args), seed=0),
    }


def _uses_vs_accuracy(ax, rows: list[dict], fmt: str, **kw) -> None:
    """Plot accuracy against mean channel uses per image, one marker per row."""
    ax.plot([r["mean_channel_uses"] for r in rows], [r["accuracy"] for r in rows], fmt, **kw)


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chans = sorted({p["channel"] for p in rep["points"]})
    snrs = sorted({p["snr_db"] for p in rep["points"]})
    fig, axes = plt.subplots(
        len(chans), len(snrs), figsize=(3.2 * len(snrs), 3.0 * len(chans)), squeeze=False
    )
    for p in rep["points"]:
        ax = axes[chans.index(p["channel"])][snrs.index(p["snr_db"])]
        ks = [int(k) for k in p["fixed"]]
        fx = list(p["fixed"].values())
        _uses_vs_accuracy(ax, fx, "o-", color="0.4", label="fixed K")
        for k, f in zip(ks, fx):
            ax.annotate(
                str(k),
                (f["mean_channel_uses"], f["accuracy"]),
                fontsize=7,
                xytext=(2, -9),
                textcoords="offset points",
            )
        ir = list(p["ir"].values())
        _uses_vs_accuracy(ax, ir, "s-", color="C3", label="IR (3 confidences)")
        s = p["snr"]
        ax.plot(s["mean_channel_uses"], s["accuracy"], "^", color="C0", ms=8, label="SNR-chosen K")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{p['channel']} {p['snr_db']:g} dB", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("mean channel uses per image")
    for row in axes:
        row[0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"rate adaptation, {rep['n']} test images (K_max {rep['k_max']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--channels", nargs="+", default=["awgn", "rayleigh"])
    ap.add_argument("--snrs", nargs="+", type=float, default=[-10.0, 0.0, 10.0, 20.0])
    ap.add_argument("--k0", type=int, default=4)
    ap.add_argument("--k-max", type=int, default=64)
    ap.add_argument("--confidences", nargs="+", type=float, default=[0.98, 0.99, 0.995])
    ap.add_argument("--target", type=float, default=0.99, help="SNR-chosen K: choose_rate target")
    ap.add_argument("--json", default="results/rate_adaptation.json")
    args = ap.parse_args(argv)
    rep = measure(args)
    out = write_json(args.json, rep)
    plot(rep, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
