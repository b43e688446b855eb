"""Put learned baselines retrained by `rkdsc train --stage baselines` into an existing bundle
(issue 19's equal terms): each named baseline's components and manifest entry are replaced the
way the export stage writes them, everything else in the bundle stays as it is, and
`training_log/baselines.json` gets the new runs' summaries (with their per-epoch history in
`training_log/baselines.<name>.json`).

Usage: python scripts/put_baselines.py --run runs/eqterms --names deepjscc-cnn \
           [--bundle rkdsc_core/bundles/default]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import yaml

from rkdsc_core.bundle import load_component, read_manifest, resolve_bundle_path, save_bundle
from rkdsc_train.stages.export import add_baselines

SUMMARY = ("rate", "epochs", "params", "train_seconds", "best", "recipe")


class _Dumper(yaml.SafeDumper):
    """The shipped manifest's layout: lists of 5+ floats (rate tables) on one line."""


def _list(dumper: yaml.SafeDumper, data: list):
    flow = len(data) >= 5 and all(isinstance(x, float) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def put(bundle: Path, run: Path, names: list[str]) -> dict:
    """Replace `names` in the bundle folder `bundle` by those trained in `run`; returns the new
    manifest entries."""
    for name in names:
        if not (run / "baselines" / name / "metrics.json").is_file():
            raise SystemExit(f"no trained baseline {name!r} in {run}/baselines")
    manifest = read_manifest(bundle)
    modules = {n: load_component(bundle, n, manifest) for n in manifest["files"]}
    manifest = {k: v for k, v in manifest.items() if k not in ("files", "format_version")}
    ctx = SimpleNamespace(run_dir=run, cfg=SimpleNamespace(baselines=SimpleNamespace(names=names)))
    new: dict = {}
    add_baselines(ctx, new, modules)  # adds modules baseline.<name>.<part> and their entries
    for name in names:
        old = manifest.get("baselines", {}).get(name, {}).get("components", {})
        for key in old.values():
            if key not in new["baselines"][name]["components"].values():
                manifest.pop(key, None)
                modules.pop(key, None)
                (bundle / f"{key}.safetensors").unlink(missing_ok=True)
        for key in new["baselines"][name]["components"].values():
            manifest[key] = new[key]
        manifest.setdefault("baselines", {})[name] = new["baselines"][name]
    save_bundle(bundle, manifest, modules)
    written = bundle / "manifest.yaml"  # same content, laid out as before (a readable diff)
    written.write_text(
        yaml.dump(yaml.safe_load(written.read_text()), Dumper=_Dumper, sort_keys=False)
    )
    log_dir = bundle / "training_log"
    if log_dir.is_dir():
        path = log_dir / "baselines.json"
        summary = json.loads(path.read_text()) if path.exists() else {"baselines": {}}
        for name in names:
            m = json.loads((run / "baselines" / name / "metrics.json").read_text())
            summary["baselines"][name] = {k: m[k] for k in SUMMARY if k in m}
            (log_dir / f"baselines.{name}.json").write_text(json.dumps(m, indent=2))
        path.write_text(json.dumps(summary, indent=2))
    return {n: new["baselines"][n] for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--run", required=True, help="the training run folder (out_dir)")
    ap.add_argument("--names", required=True, help="comma-separated baseline names")
    args = ap.parse_args()
    entries = put(resolve_bundle_path(args.bundle), Path(args.run), args.names.split(","))
    print(json.dumps(entries, indent=2, default=str))


if __name__ == "__main__":
    main()
