"""Replace some baselines of a `rkdsc eval --baselines` JSON by those of a newer run (issue 19):
when one baseline is retrained or re-measured, only it needs measuring again, because every
method sees the same images and keyed channel draws. The two runs must agree on the bundle's
own points (same images, draws and RKD-SC accuracy, checked per point); the merged file keeps
the old run's provenance and lists each merge under `provenance.merged`, and its wins / ties /
losses sentences are regenerated from the tests.

Usage: python scripts/merge_baselines.py results/baselines/baselines_awgn_k16.json new.json \
           --names deepjscc-cnn,image-digital [--plot results/baselines/baselines_awgn_k16.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rkdsc_core.eval import stats
from rkdsc_core.outputs import json_text


def merge(old: dict, new: dict, names: list[str]) -> dict:
    """`old` with baselines `names` (points and info) taken from `new`; raises ValueError when
    the two runs are not paired (other images, channel, rate or RKD-SC points)."""
    for key in ("bundle", "dataset", "split", "n", "channel", "rate", "images"):
        if key == "images" and key not in old:  # runs before the selection was recorded
            continue
        if old.get(key) != new.get(key):
            raise ValueError(f"the runs differ in {key!r}: {old.get(key)!r} vs {new.get(key)!r}")
    mine = {p["snr_db"]: p for p in old["points"]}
    for p in new["points"]:
        q = mine.get(p["snr_db"])
        if q is None or (q["accuracy"], q.get("ci95")) != (p["accuracy"], p.get("ci95")):
            raise ValueError(f"RKD-SC's point at {p['snr_db']:g} dB differs between the runs")
    out = json.loads(json.dumps(old))
    for name in names:
        if name not in new.get("baselines", {}):
            raise ValueError(f"baseline {name!r} is not in the newer run")
        out["baselines"][name] = new["baselines"][name]
        out["baseline_info"][name] = new["baseline_info"][name]
    out["comparison"] = stats.summary(out["baselines"])
    merged = out["provenance"].setdefault("merged", [])
    merged.append({"names": names, **{k: new["provenance"].get(k) for k in ("git_sha", "command")}})
    merged[-1]["date"] = new["provenance"].get("date")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="the JSON to update in place")
    ap.add_argument("new", help="the newer run's JSON")
    ap.add_argument("--names", required=True, help="comma-separated baselines to take over")
    ap.add_argument("--plot", default=None, help="redraw this figure from the merged JSON")
    args = ap.parse_args()
    old, new = (json.loads(Path(p).read_text()) for p in (args.old, args.new))
    try:
        out = merge(old, new, args.names.split(","))
    except ValueError as exc:
        raise SystemExit(f"merge_baselines: {exc}") from None
    Path(args.old).write_text(json_text(out))
    if args.plot:
        from rkdsc_core.eval.report import plot_curves

        plot_curves(out, args.plot)


if __name__ == "__main__":
    main()
