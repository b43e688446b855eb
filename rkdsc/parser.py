"""The `rkdsc` command line's parser (DESIGN.md §5): one function per subcommand; choices of named
things are read from their registries. Imports no torch and no GNU Radio (`rkdsc doctor`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator

from rkdsc import args as A


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


def _doctor_parser(sub) -> None:
    p = sub.add_parser("doctor", help="check GNU Radio, numpy<2, torch, timm, datasets, GRC path")
    p.add_argument("--json", action="store_true", help="machine-readable report")


def _grc_path_parser(sub) -> None:
    sub.add_parser("grc-path", help="print the folder of the block YAMLs (GRC_BLOCKS_PATH)")


def _train_parser(sub) -> None:
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


def _eval_parser(sub) -> None:
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


def _bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="sizes, FLOPs, latency/throughput, GNU Radio throughput")
    p.add_argument("--bundle", default="default")
    p.add_argument("--n", type=A.integer(1), default=2000, help="images for the GR loopbacks")
    p.add_argument("--no-gnuradio", action="store_true", help="model figures only")
    p.add_argument("--json", type=A.output_file, default=None)


def _demo_parser(sub) -> None:
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


def _loopback_parser(sub) -> None:
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


def _ota_parsers(sub) -> None:
    from rkdsc.ota_cli import add_rx_arguments, add_tx_arguments  # no GNU Radio import

    p = sub.add_parser("tx", help="send images over the air: sim | uhd | soapy | file (SigMF)")
    add_tx_arguments(p)

    p = sub.add_parser("rx", help="receive images: sim | uhd | soapy | file (SigMF replay)")
    add_rx_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    ap = A.OneLineParser(prog="rkdsc", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _doctor_parser,
        _grc_path_parser,
        _train_parser,
        _eval_parser,
        _bench_parser,
        _demo_parser,
        _loopback_parser,
        _ota_parsers,
    ):
        add(sub)
    return ap
