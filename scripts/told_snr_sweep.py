"""Accuracy vs the SNR the receiver is told (issue 21, row 1): a clean link (noiseless symbols)
and a matched AWGN / Rayleigh link, each decoded with the CAT decoder's SNR input clamped to the
bundle's trained range (what `rkdsc_core.runtime` does) and, for comparison, unclamped.

    python scripts/told_snr_sweep.py --n 2000 --json results/told_snr_k16.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from rkdsc_core.channels import make_channel
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.eval.harness import encode_all
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle

TOLD = [-10, 0, 10, 20, 30, 35, 37, 38, 39, 40, 45, 50, 60, float("inf")]
MATCHED = [20, 30, 40, 60]


def _db(s: float) -> float | str:
    return s if np.isfinite(s) else "inf"  # JSON has no infinity


def _accuracy(bundle, sym, labels, told, channel=None, seed=0) -> float:
    rx = bundle.receiver()
    if channel is None:  # clean link: the symbols as sent, the receiver told `told`
        cls, _ = rx.classify(sym, told)
    else:  # matched link: the channel at `told`, perfect-CSI equalisation
        gen = torch.Generator().manual_seed(seed)
        x = torch.from_numpy(sym)
        out = make_channel(channel)(x, torch.full((len(sym),), float(told)), generator=gen)
        cls, _ = rx.classify(out.symbols.numpy(), out.snr_eff_db.numpy())
    return float((cls == labels).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=16)
    ap.add_argument("--json", default="results/told_snr_k16.json")
    args = ap.parse_args()
    t0 = time.time()
    bundle = load_bundle(args.bundle)
    trained = bundle.snr_range_db
    data = load_dataset(bundle.manifest["dataset"]["name"], "test", limit=args.n)
    sym = encode_all(bundle, data.images, args.rate)
    rep = {"bundle": str(bundle.path), "n": len(sym), "rate": args.rate, "trained": trained}
    for name, clamp in (("clamped", trained), ("unclamped", None)):
        bundle.snr_range_db = clamp
        rep[name] = {
            "clean_link": [
                {"told_snr_db": _db(s), "accuracy": _accuracy(bundle, sym, data.labels, s)}
                for s in TOLD
            ],
            **{
                f"{ch}_matched": [
                    {"snr_db": s, "accuracy": _accuracy(bundle, sym, data.labels, s, ch, i)}
                    for i, s in enumerate(MATCHED)
                ]
                for ch in ("awgn", "rayleigh")
            },
        }
    bundle.snr_range_db = trained
    rep["provenance"] = provenance(config=vars(args), seed=0)
    rep["seconds"] = time.time() - t0
    text = json.dumps(rep, indent=2, allow_nan=False)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(text + "\n")
    for name in ("clamped", "unclamped"):
        row = "  ".join(f"{p['told_snr_db']}:{p['accuracy']:.4f}" for p in rep[name]["clean_link"])
        print(f"{name} clean link, told SNR: {row}")
        for ch in ("awgn", "rayleigh"):
            row = "  ".join(
                f"{p['snr_db']:g}:{p['accuracy']:.4f}" for p in rep[name][f"{ch}_matched"]
            )
            print(f"{name} {ch} matched: {row}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
