"""Replace some baselines of a `rkdsc eval --baselines` JSON by those of a newer run (issue 19):
when one baseline is retrained or re-measured, only it needs measuring again, because every
method sees the same images and keyed channel draws. The two runs must agree on the bundle's
own points (same images, draws and RKD-SC accuracy, checked per point); the merged file keeps
the old run's provenance and lists each merge under `provenance.merged`, and its wins / ties /
losses sentences are regenerated from the tests.

With `--measure` instead of a newer JSON, the named baselines and RKD-SC's points are measured
now on the old run's images, SNRs, rate and seed (what `rkdsc eval --baselines` does, without
re-measuring the clean teacher). With `--remeasure-snr S` (and `--measure`), RKD-SC and every
baseline of the old run are measured again at the SNRs S in one run, and all their points there
are replaced (a column whose RKD-SC point a code change moved, re-paired as a whole).

Usage: python scripts/merge_baselines.py results/baselines/baselines_awgn_k16.json new.json \
           --names deepjscc-cnn,image-digital [--plot results/baselines/baselines_awgn_k16.png]
       python scripts/merge_baselines.py results/baselines/baselines_awgn_k16.json --measure \
           --names deepjscc-cnn [--bundle default] [--plot …]
       python scripts/merge_baselines.py results/baselines/baselines_awgn_k16.json --measure \
           --names all --remeasure-snr 24 [--plot …]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rkdsc_core.eval import stats
from rkdsc_core.outputs import json_text


def merge(old: dict, new: dict, names: list[str], skip_unpaired: bool = False) -> dict:
    """`old` with baselines `names` (points and info) taken from `new`; raises ValueError when
    the two runs are not paired (other images, channel, rate or RKD-SC points). With
    `skip_unpaired`, SNRs where RKD-SC's points differ are left out of the taken-over baselines
    (and listed in the merge record) instead."""
    for key in ("bundle", "dataset", "split", "n", "channel", "rate", "images"):
        if key == "images" and key not in old:  # runs before the selection was recorded
            continue
        if old.get(key) != new.get(key):
            raise ValueError(f"the runs differ in {key!r}: {old.get(key)!r} vs {new.get(key)!r}")
    mine = {p["snr_db"]: p for p in old["points"]}
    unpaired = []
    for p in new["points"]:
        q = mine.get(p["snr_db"])
        if q is None or (q["accuracy"], q.get("ci95")) != (p["accuracy"], p.get("ci95")):
            if not skip_unpaired:
                raise ValueError(f"RKD-SC's point at {p['snr_db']:g} dB differs between the runs")
            unpaired.append(p["snr_db"])
    out = json.loads(json.dumps(old))
    for name in names:
        if name not in new.get("baselines", {}):
            raise ValueError(f"baseline {name!r} is not in the newer run")
        pts = [p for p in new["baselines"][name] if p["snr_db"] not in unpaired]
        out["baselines"][name] = pts
        out["baseline_info"][name] = new["baseline_info"][name]
    out["comparison"] = stats.summary(out["baselines"])
    merged = out["provenance"].setdefault("merged", [])
    merged.append({"names": names, **{k: new["provenance"].get(k) for k in ("git_sha", "command")}})
    merged[-1]["date"] = new["provenance"].get("date")
    if unpaired:
        merged[-1]["left_out_snr_db"] = unpaired
        merged[-1]["left_out_why"] = "RKD-SC's own point there differs from the older run's"
    return out


def remeasured(old: dict, new: dict, snrs: list[float]) -> dict:
    """`old` with RKD-SC's and every baseline's points at `snrs` replaced by (or, where a merge
    left one out, taken from) `new`, one run that measured all of them there."""
    missing = set(old["baselines"]) - set(new["baselines"])
    if missing:
        raise ValueError(f"the newer run lacks baselines {sorted(missing)}")

    def put(points: list, fresh: list) -> list:
        keep = [p for p in points if p["snr_db"] not in snrs]
        return sorted(keep + [p for p in fresh if p["snr_db"] in snrs], key=lambda p: p["snr_db"])

    out = json.loads(json.dumps(old))
    out["points"] = put(out["points"], new["points"])
    for curve in out.get("curves", []):  # RKD-SC's curve, as `rkdsc eval` writes it
        if curve.get("channel") == out["channel"] and curve.get("rate") == out["rate"]:
            curve["points"] = out["points"]
    for name in out["baselines"]:
        out["baselines"][name] = put(out["baselines"][name], new["baselines"][name])
    out["comparison"] = stats.summary(out["baselines"])
    record = {k: new["provenance"].get(k) for k in ("git_sha", "command", "date")}
    out["provenance"].setdefault("merged", []).append(
        {"names": ["rkdsc", *sorted(out["baselines"])], "remeasured_snr_db": snrs, **record}
    )
    return out


def measure(old: dict, names: list[str], bundle_ref: str, snrs: list[float] | None = None) -> dict:
    """A run of baselines `names` and RKD-SC's points, paired with `old` (its images, channel,
    SNRs or `snrs`, K and seed), in `rkdsc eval --baselines` JSON form."""
    from rkdsc_core.eval.baselines import run_baselines
    from rkdsc_core.eval.harness import snr_sweep
    from rkdsc_core.eval.report import BASELINE_TRAIN_IMAGES
    from rkdsc_core.provenance import provenance
    from rkdsc_core.runtime import load_bundle

    bundle = load_bundle(bundle_ref)
    seed = int(old["provenance"].get("seed", 0))
    data = bundle.dataset.load(old["split"], None, old["n"])
    train = bundle.dataset.load("train").subset(BASELINE_TRAIN_IMAGES)
    snrs = snrs or [p["snr_db"] for p in old["points"]]
    code_factory = None
    if any(n.endswith("-digital") or n.startswith("feature-digital") for n in names):
        from rkdsc.cli import digital_code_factory  # gr-fec, from the GNU Radio side

        code_factory = digital_code_factory(",".join(names))
    rkdsc = snr_sweep(bundle, data, old["channel"], snrs, old["rate"], seed)
    curves, info = run_baselines(
        bundle,
        data,
        train,
        old["channel"],
        snrs,
        old["rate"],
        names,
        code_factory,
        seed,
        accuracy_at_tx=old.get("clean_accuracy"),
    )
    return {
        **{k: old.get(k) for k in ("bundle", "dataset", "split", "n", "channel", "rate")},
        "points": stats.finish(rkdsc),
        "baselines": {n: stats.compare(rkdsc, p) for n, p in curves.items()},
        "baseline_info": info,
        "provenance": provenance(
            config={"merged_into": old["provenance"].get("command")}, seed=seed
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="the JSON to update in place")
    ap.add_argument("new", nargs="?", help="the newer run's JSON (or --measure)")
    ap.add_argument("--measure", action="store_true", help="measure the baselines now instead")
    ap.add_argument("--bundle", default="default", help="with --measure")
    ap.add_argument("--names", required=True, help="comma-separated baselines to take over, or all")
    ap.add_argument("--remeasure-snr", default=None, help="with --measure: SNRs to re-pair whole")
    ap.add_argument("--plot", default=None, help="redraw this figure from the merged JSON")
    ap.add_argument(
        "--skip-unpaired",
        action="store_true",
        help="leave out SNRs where RKD-SC's points differ (listed in the merge record)",
    )
    args = ap.parse_args()
    if bool(args.new) == args.measure:
        raise SystemExit("merge_baselines: give a newer JSON or --measure (not both)")
    if args.remeasure_snr and not args.measure:
        raise SystemExit("merge_baselines: --remeasure-snr measures: give --measure")
    old = json.loads(Path(args.old).read_text())
    names = sorted(old["baselines"]) if args.names == "all" else args.names.split(",")
    snrs = [float(x) for x in args.remeasure_snr.split(",")] if args.remeasure_snr else None
    if args.measure:
        new = measure(old, names, args.bundle, snrs)
    else:
        new = json.loads(Path(args.new).read_text())
    try:
        out = remeasured(old, new, snrs) if snrs else merge(old, new, names, args.skip_unpaired)
    except ValueError as exc:
        raise SystemExit(f"merge_baselines: {exc}") from None
    Path(args.old).write_text(json_text(out))
    if args.plot:
        from rkdsc_core.eval.report import plot_curves

        plot_curves(out, args.plot)


if __name__ == "__main__":
    main()
