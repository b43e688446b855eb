"""The `rkdsc` command (DESIGN.md §5). Results go to stdout; user errors are one line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rkdsc_core.errors import RkdscError


def cmd_doctor(args: argparse.Namespace) -> int:
    from rkdsc_core.doctor import FAIL, report, run_checks

    checks = run_checks()
    rep = report(checks)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        for c in checks:
            line = f"[{c.status:>4}] {c.name:<16} {c.detail}"
            print(line + (f"\n       fix: {c.fix}" if c.fix and c.status != "ok" else ""))
    return 0 if all(c.status != FAIL for c in checks) else 1


def cmd_grc_path(args: argparse.Namespace) -> int:
    from rkdsc_gr.paths import grc_path

    print(grc_path())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rkdsc_train.pipeline import run_pipeline

    run_pipeline(args.config, args.overrides, stages=args.stage, resume=args.resume)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rkdsc", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check GNU Radio, numpy<2, torch, timm, datasets, GRC path")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("grc-path", help="print the folder of the block YAMLs (GRC_BLOCKS_PATH)")
    p.set_defaults(func=cmd_grc_path)

    p = sub.add_parser("train", help="run training stages from a YAML config")
    p.add_argument("--config", required=True, help="YAML file of deltas over the defaults")
    p.add_argument(
        "--stage",
        action="append",
        default=None,
        help="stage to run (repeatable); default: every stage in order",
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoints")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=cmd_train)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.func(args)
    except RkdscError as exc:
        print(f"rkdsc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rkdsc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
