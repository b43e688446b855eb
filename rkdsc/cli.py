"""The `rkdsc` command (DESIGN.md §5). Results go to stdout; user errors are one line on stderr."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from rkdsc import args as A
from rkdsc_core.errors import RkdscError
from rkdsc_core.outputs import json_text

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
    try:
        from rkdsc_gr.loopback import run_loopback  # GNU Radio is imported here, not at top level
    except ImportError as exc:
        raise RkdscError(f"rkdsc loopback needs GNU Radio ({exc}): run 'make setup'") from None
    from rkdsc_gr.loopback import Adapt

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
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json_text(rep))
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
    try:
        from rkdsc_gr.demo import format_table, run_demo  # GNU Radio is imported here only
    except ImportError as exc:
        raise RkdscError(f"rkdsc demo needs GNU Radio ({exc}): run 'make setup'") from None
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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json_text(rep))
        print(f"wrote {args.json}")
    return 0


class Names:
    """argparse `choices` read from a registry when first needed (checking a value, printing help),
    not when the parser is built: `rkdsc doctor` and `rkdsc grc-path` never import torch."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names

    def __contains__(self, value: object) -> bool:
        return value in tuple(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._names()))


def _channels() -> tuple[str, ...]:
    from rkdsc_core.channels import list_channels

    return list_channels()


def _channel_option(p: argparse.ArgumentParser, **kwargs) -> None:
    """`--channel`, its choices the channel registry's names."""
    p.add_argument("--channel", choices=Names(_channels), metavar="CHANNEL", **kwargs)


def _snr_option(p: argparse.ArgumentParser, help: str) -> None:
    """`--snr`: comma-separated Es/N0 values in dB (default −10…24 step 2)."""
    p.add_argument("--snr", type=A.listed(A.snr_db), default=list(range(-10, 25, 2)), help=help)


def build_parser() -> argparse.ArgumentParser:
    ap = A.OneLineParser(prog="rkdsc", description=__doc__)
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

    p = sub.add_parser("eval", help="offline accuracy: clean, and through a channel vs SNR / K")
    p.add_argument("--bundle", default="default", help="'default' or a bundle folder")
    p.add_argument("--clean", action="store_true", help="teacher and student accuracy, no channel")
    _channel_option(p, action="append", help="channel (repeatable): %(choices)s")
    _snr_option(p, "SNRs in dB, comma-separated (default -10..24 step 2)")
    p.add_argument(
        "--rate", type=A.listed(A.integer(1)), default=None, help="K symbols per image: 16 or 4,16"
    )
    p.add_argument(
        "--rate-snr",
        type=A.snr_db,
        default=None,
        help="also sweep every trained K at this SNR (accuracy vs K)",
    )
    p.add_argument("--n", type=A.integer(1), default=None, help="test images (default: all)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-root", default=None, help="dataset root (CIFAR/ImageFolder)")
    p.add_argument("--seed", type=A.SEED, default=0)
    p.add_argument(
        "--baselines", type=A.baselines, default=None, help="comma-separated baselines, or all"
    )
    p.add_argument("--json", type=A.output_file, default=None, help="write the report here")
    p.add_argument("--plot", type=A.output_file, default=None, help="accuracy-vs-SNR PNG here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="sizes, FLOPs, latency/throughput, GNU Radio throughput")
    p.add_argument("--bundle", default="default")
    p.add_argument("--n", type=A.integer(1), default=2000, help="images for the GR loopbacks")
    p.add_argument("--no-gnuradio", action="store_true", help="model figures only")
    p.add_argument("--json", type=A.output_file, default=None)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the main job: images -> GNU Radio waveform -> decisions")
    p.add_argument("--bundle", default="default")
    p.add_argument("--quick", action="store_true", help="100 images, 2 SNRs (about a minute)")
    p.add_argument("--n", type=A.integer(1), default=None, help="images (default 500, quick 100)")
    p.add_argument("--rate", type=A.integer(1), default=16)
    p.add_argument(
        "--out", type=A.output_folder, default="results", help="folder for demo.json, demo.png"
    )
    p.add_argument(
        "--images-per-frame",
        type=A.integer(1),
        default=64,
        help="N images per waveform frame (default 64)",
    )
    p.add_argument("--data-root", default=None, help="dataset root (CIFAR/ImageFolder bundles)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("loopback", help="the eval, through a GNU Radio flowgraph (rkdsc blocks)")
    p.add_argument("--phy", default="symbol", choices=["symbol", "waveform"])
    p.add_argument("--bundle", default="default", help="'default' or a bundle folder")
    _channel_option(p, default="awgn", help="%(choices)s (default %(default)s)")
    _snr_option(p, "SNRs in dB, a,b,c (inf: noiseless)")
    p.add_argument("--rate", type=A.integer(1), default=16, help="K symbols per image")
    p.add_argument("--n", type=A.integer(1), default=None, help="test images (default: all)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-root", default=None, help="dataset root (CIFAR/ImageFolder)")
    p.add_argument("--seed", type=A.SEED, default=0)
    p.add_argument("--fd-ts", type=A.FD_TS, default=0.01, help="Doppler f_D*T_s (rayleigh_fast)")
    p.add_argument("--k-factor", type=A.K_FACTOR, default=4.0, help="Rician K (rician)")
    p.add_argument(
        "--draws",
        default=None,
        choices=["keyed", "gnuradio"],
        help="--phy symbol: rkdsc eval's keyed channel draws (default; the same h and noise as "
        "the offline methods) or GNU Radio's own channel blocks",
    )
    p.add_argument(
        "--images-per-frame",
        type=A.integer(1),
        default=1,
        help="N images per waveform frame (preamble and header paid once per N; 1: lowest "
        "latency; 512: >= 70%% of the channel uses carry semantic symbols at K=16)",
    )
    p.add_argument(
        "--adapt",
        default="none",
        choices=["none", "snr", "ir"],
        help="rate from the SNR fed back, or incremental redundancy up to --rate",
    )
    p.add_argument("--k0", type=int, default=4, help="ir: symbols of the first increment")
    p.add_argument(
        "--step", type=int, default=None, help="ir: increment size (default k0 x 1,2,3,4,6,8,..)"
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=0.98,
        help="ir: stop when K_max would raise the accuracy by at most 1 - C (calibrated)",
    )
    p.add_argument(
        "--target-accuracy", type=float, default=0.99, help="snr: fraction of clean accuracy"
    )
    p.add_argument("--feedback-delay", type=int, default=0, help="feedback delay in images")
    p.add_argument("--feedback-loss", type=float, default=0.0, help="feedback loss probability")
    p.add_argument(
        "--feedback-timeout",
        type=float,
        default=10.0,
        help="ir: seconds after a request before the receiver decides with what it has",
    )
    p.add_argument("--json", type=A.output_file, default=None, help="write the report here")
    p.set_defaults(func=cmd_loopback)

    from rkdsc.ota_cli import add_rx_arguments, add_tx_arguments  # no GNU Radio import

    p = sub.add_parser("tx", help="send images over the air: sim | uhd | soapy | file (SigMF)")
    add_tx_arguments(p)
    p.set_defaults(func=cmd_tx)

    p = sub.add_parser("rx", help="receive images: sim | uhd | soapy | file (SigMF replay)")
    add_rx_arguments(p)
    p.set_defaults(func=cmd_rx)
    return ap


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
        return args.func(args)
    except RkdscError as exc:
        rank = f" (rank {_RANK}/{_WORLD})" if _WORLD > 1 else ""
        print(f"rkdsc: error{rank}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rkdsc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
