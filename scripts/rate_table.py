"""Re-measure a bundle's rate table and IR stopping rule on its validation images (issue 18) and
write them into its manifest. Only manifest keys change; the weight files and their SHA-256
entries stay as they are (the bundle is reloaded and verified at the end).

    .venv/bin/python scripts/rate_table.py [--bundle default] [--n 2000]
"""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from rkdsc_core.bundle import MANIFEST, resolve_bundle_path
from rkdsc_core.eval.adaptive import (
    RATE_ADAPTATION_DOC,
    calibrate_stop_rule,
    rate_table,
    validation_images,
)
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import Bundle

SNRS = (-10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
REGENERATE = "HF_HUB_OFFLINE=1 .venv/bin/python scripts/rate_table.py --bundle default"


class _Row(list):
    """A list of numbers written on one line (keeps the manifest's tables readable)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Row, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def compact(manifest: dict) -> dict:
    """The manifest with the rate table's and the stop rule's number rows marked for one line."""
    for table in manifest.get("rate_table", {}).values():
        table["accuracy"] = [_Row(r) for r in table["accuracy"]]
        table["snr_db"] = _Row(table["snr_db"])
    rule = manifest.get("ir_stop_rule")
    if rule:
        rule["gain"] = [[_Row(r) for r in plane] for plane in rule["gain"]]
        rule["snr_edges_db"], rule["margin_edges"] = (
            _Row(rule["snr_edges_db"]),
            _Row(rule["margin_edges"]),
        )
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--n", type=int, default=None, help="validation images (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reformat", action="store_true", help="only rewrite the manifest compactly")
    args = ap.parse_args(argv)
    path = resolve_bundle_path(args.bundle) / MANIFEST
    if args.reformat:
        manifest = yaml.safe_load(path.read_text())
        path.write_text(yaml.dump(compact(manifest), Dumper=_Dumper, sort_keys=False))
        return 0
    t0 = time.monotonic()
    bundle = Bundle(args.bundle)
    val = validation_images(bundle).subset(args.n)
    table = rate_table(bundle, val, ("awgn", "rayleigh"), SNRS, args.seed)
    rule = calibrate_stop_rule(bundle, val, seed=args.seed + 1)
    manifest = yaml.safe_load(path.read_text())
    manifest["rate_table"] = table
    manifest["ir_stop_rule"] = rule.to_dict()
    manifest["rate_adaptation"] = {
        **RATE_ADAPTATION_DOC,
        "regenerate": REGENERATE,
        "provenance": provenance(
            seed=args.seed, images=f"validation: last {len(val)} of the training split"
        ),
    }
    files = manifest.pop("files")
    manifest["files"] = files  # keep the file table last, as save_bundle writes it
    path.write_text(yaml.dump(compact(manifest), Dumper=_Dumper, sort_keys=False))
    Bundle(args.bundle)  # reload: every weight file still matches its SHA-256
    for ch, t in table.items():
        print(f"{ch}: n={t['n']} clean {t['clean_accuracy']:.4f}")
        for k, accs in zip(t["rates"], t["accuracy"]):
            print(f"  K={k:>2}: " + " ".join(f"{a:.4f}" for a in accs))
    print(f"wrote {path} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
