"""The `rkdsc` command (DESIGN.md §5). Results go to stdout; user errors are one line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from rkdsc import args as A
from rkdsc.ota_cli import gnuradio_module
from rkdsc.parser import build_parser
from rkdsc_core.errors import RkdscError
from rkdsc_core.outputs import write_json

# OpenMP threads that spin while waiting cost 10x on a busy 2-core machine (measured); must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Under torchrun only rank 0 draws progress bars (tqdm reads TQDM_* defaults when imported).
_WORLD = int(os.environ.get("WORLD_SIZE", "1") or 1)
_RANK = int(os.environ.get("RANK", "0") or 0)
if _WORLD > 1 and _RANK > 0:
    os.environ.setdefault("TQDM_DISABLE", "1")


def cmd_doctor(args: argparse.Namespace) -> int:
    from rkdsc.doctor import FAIL, report, run_checks

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


def digital_code_factory(baselines: str | None):
    """The gr-fec code factory when `--baselines` asks for a digital baseline, else None."""
    from rkdsc_core.eval.baselines import DIGITAL
    from rkdsc_core.eval.report import baseline_names

    if not any(n in DIGITAL for n in baseline_names(baselines)):
        return None
    try:
        from rkdsc_gr.digital_baselines import make_code  # imports gnuradio.fec
    except ImportError as e:
        raise RkdscError(f"digital baselines need GNU Radio's gnuradio.fec ({e})") from e
    return make_code


def cmd_eval(args: argparse.Namespace) -> int:
    from rkdsc_core.eval.report import print_report, run_eval

    rep = run_eval(args, code_factory=digital_code_factory(args.baselines))
    print_report(rep)
    if args.json:
        print(f"wrote {args.json}")
    return 0


def cmd_loopback(args: argparse.Namespace) -> int:
    loopback = gnuradio_module("loopback", "rkdsc_gr.loopback")
    run_loopback, Adapt = loopback.run_loopback, loopback.Adapt

    keys = ("bundle", "channel", "rate", "n", "split", "data_root", "seed", "phy", "fd_ts", "draws")
    adapt = Adapt(
        args.adapt,
        args.k0,
        args.step,
        args.confidence,
        args.target_accuracy,
        args.feedback_delay,
        args.feedback_loss,
        args.feedback_timeout,
    )
    rep = run_loopback(
        snrs=args.snr,
        k_factor=args.k_factor,
        images_per_frame=args.images_per_frame,
        adapt=adapt,
        **{k: getattr(args, k) for k in keys},
    )
    if args.json:
        write_json(args.json, rep)
    for p in rep["points"]:
        print(loopback_line(rep, p))
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def loopback_line(rep: dict, p: dict) -> str:
    """One printed line per loopback point; every field may be missing or null (nothing arrived)."""
    line = f"{rep['channel']} K={rep['rate']} {p['snr_db']:g} dB: accuracy {_pct(p['accuracy'])}"
    if "delivered_accuracy" in p:
        line += f" (delivered {_pct(p['delivered_accuracy'])} of all images sent)"
    line += f"  frames {p['frames_detected']}/{p['frames_sent']}"
    if p.get("channel_uses_per_image") is not None:
        line += f"  {p['channel_uses_per_image']:.1f} channel uses/image"
    if p.get("images_per_s") is not None:
        line += f"  {p['images_per_s']:.0f} images/s"
    if p.get("mean_symbols") is not None:  # the waveform: semantic symbols and all on the air
        line += f"  {p['mean_symbols']:.2f} symbols/image ({p['mean_channel_uses']:.0f} on air)"
    elif "mean_channel_uses" in p:
        line += f"  {p['mean_channel_uses']:.2f} symbols/image"
    if "requests_per_image" in p:
        line += f"  {p['requests_per_image']:.2f} requests/image  K {p['k_histogram']}"
    return line


def cmd_tx(args: argparse.Namespace) -> int:
    from rkdsc.ota_cli import cmd_tx as run  # GNU Radio is imported there, lazily

    return run(args)


def cmd_rx(args: argparse.Namespace) -> int:
    from rkdsc.ota_cli import cmd_rx as run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    demo = gnuradio_module("demo", "rkdsc_gr.demo")
    format_table, run_demo = demo.format_table, demo.run_demo
    rep = run_demo(
        args.bundle,
        quick=args.quick,
        n=args.n,
        rate=args.rate,
        out_dir=args.out,
        images_per_frame=args.images_per_frame,
        data_root=args.data_root,
    )
    print(format_table(rep))
    print(f"wrote {args.out}/demo.json and {args.out}/demo.png")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rkdsc_core.bundle import bundle_ref
    from rkdsc_core.eval.bench import model_bench
    from rkdsc_core.provenance import provenance
    from rkdsc_core.runtime import load_bundle

    bundle = load_bundle(args.bundle)
    rep = {"bundle": bundle_ref(bundle.path), "model": model_bench(bundle)}
    if not args.no_gnuradio:
        try:
            from rkdsc_gr.bench import gr_bench  # GNU Radio is imported here only
        except ImportError as exc:
            raise RkdscError(
                f"GNU Radio benchmark needs GNU Radio ({exc}); add --no-gnuradio"
            ) from None
        rep["gnuradio"] = gr_bench(args.bundle, args.n)
    rep["provenance"] = provenance(config={"n": args.n}, seed=None)
    m = rep["model"]
    print(f"params: {m['params']}")
    print(f"FLOPs/image: {m['flops_per_image']}")
    for row in m["batches"]:
        print(
            f"batch {row['batch']:>4}: encoder {row['encoder_images_per_s']:9.0f} img/s, "
            f"decoder {row['decoder_images_per_s']:9.0f} img/s, student/teacher speed "
            f"x{row['student_speedup_vs_teacher']:.1f}"
        )
    for key, val in rep.get("gnuradio", {}).items():
        print(f"{key}: {val:.1f}" if isinstance(val, float) else f"{key}: {val}")
    if args.json:
        write_json(args.json, rep)
        print(f"wrote {args.json}")
    return 0


#: subcommand → what runs it (the parser, `rkdsc.parser`, names the same subcommands)
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "doctor": cmd_doctor,
    "grc-path": cmd_grc_path,
    "train": cmd_train,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "demo": cmd_demo,
    "loopback": cmd_loopback,
    "tx": cmd_tx,
    "rx": cmd_rx,
}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a bad argument (one line, exit 2) or --help: a return code
        return int(exc.code or 0)
    level = logging.DEBUG if args.verbose else logging.INFO
    where = ""
    if _WORLD > 1:  # torchrun: rank 0 logs, the others only warnings and errors
        where = f"[rank {_RANK}/{_WORLD}] "
        level = level if _RANK == 0 or args.verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {where}%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        A.check_before_work(args)  # config, bundle manifest: after parsing, before any work
        return COMMANDS[args.command](args)
    except RkdscError as exc:
        rank = f" (rank {_RANK}/{_WORLD})" if _WORLD > 1 else ""
        print(f"rkdsc: error{rank}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rkdsc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
