"""Options and entry points of `rkdsc tx` and `rkdsc rx` (imported by rkdsc.cli to build its
parser, so this module must not import GNU Radio at import time; `ota_radio` does the work)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from rkdsc import args as A
from rkdsc_core.errors import RkdscError
from rkdsc_core.outputs import json_text

MODES = ("sim", "uhd", "soapy", "file")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", required=True, choices=MODES, help="where the samples go / come from")
    p.add_argument("--bundle", default="default", help="'default' or a bundle folder")
    p.add_argument(
        "--record", type=A.output_file, default=None, help="also write a SigMF recording (base)"
    )
    rec = p.add_argument_group("recording (--record)")
    rec.add_argument(
        "--record-datatype",
        default="cf32_le",
        help="cf32_le (default) or ci16_le (half the disk; full scale 32767, saturating)",
    )
    rec.add_argument("--hw", default="", help="core:hw of the recording (e.g. 'USRP B210, 50 dB')")
    rec.add_argument("--author", default="", help="core:author of the recording")
    p.add_argument("--rate", type=A.integer(1), default=16, help="K symbols per image")
    p.add_argument(
        "--images-per-frame",
        type=A.integer(1),
        default=1,
        help="N images per frame (tx, rx --mode sim); receivers read N from each header",
    )
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument(
        "--data-root",
        default=None,
        help="dataset root for CIFAR / ImageFolder bundles (the images sent, and the labels a "
        "receiver scores against)",
    )
    radio = p.add_argument_group("radio (uhd, soapy)")
    radio.add_argument(
        "--samp-rate",
        type=A.SAMP_RATE,
        default=None,
        help="S/s (default 2e6; --mode file: a raw --input's rate, a SigMF one's is in its meta)",
    )
    radio.add_argument("--freq", type=A.FREQ, default=915e6, help="carrier, Hz (default 915e6)")
    radio.add_argument("--gain", type=A.GAIN, default=0.0, help="dB (see docs/hardware.md)")
    radio.add_argument("--device", default="", help="UHD address or Soapy args (driver=hackrf)")
    radio.add_argument(
        "--if-offset",
        type=A.if_offset,
        default=None,
        help="bursts' offset from the carrier, cycles/"
        "sample (default 0.2 with a radio, else 0): keeps the signal off the DC spike",
    )
    radio.add_argument(
        "--duration", type=A.real(0.0, open_lo=True), default=None, help="seconds (radio modes)"
    )
    sim = p.add_argument_group("simulated air (sim)")
    sim.add_argument("--snr", type=A.snr_db, default=10.0, help="Es/N0 in dB (inf: noiseless)")
    sim.add_argument("--cfo", type=A.CFO, default=1e-3, help="cycles/sample")
    sim.add_argument("--sco-ppm", type=A.SCO_PPM, default=50.0, help="sample-clock offset, ppm")
    sim.add_argument("--no-multipath", action="store_true", help="one tap instead of three")
    sim.add_argument("--seed", type=A.SEED, default=0)


def add_tx_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--n", type=A.integer(0), default=100, help="images; 0 = loop over the split")
    p.add_argument(
        "--image-rate", type=A.IMAGE_RATE, default=0.0, help="images/s (radio modes: 100)"
    )


def add_rx_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--n", type=A.integer(1), default=100, help="images (--mode sim)")
    p.add_argument(
        "--input",
        default=None,
        help="--mode file: a SigMF recording (base name or either file), or a raw capture "
        "(.cs8, .cu8, .cs16, .cf32, or any file with --datatype and --samp-rate)",
    )
    p.add_argument(
        "--datatype",
        default="",
        help="SigMF datatype of a raw --input: cf32_le, cf32_be, ci16_le, ci16_be, ci8 "
        "(hackrf_transfer), cu8 (rtl_sdr); default from its suffix or its .sigmf-meta",
    )
    p.add_argument("--doppler", type=A.FD_TS, default=0.0, help="fD*Ts per symbol to track")
    p.add_argument("--json", type=A.output_file, default=None, help="write the summary here")
    p.add_argument(
        "--decisions", type=A.output_file, default=None, help="one JSON line per decision here"
    )


def _configs(args: argparse.Namespace):
    from rkdsc_gr.ota_radio import RadioConfig, SimConfig

    hardware = args.mode in ("uhd", "soapy")
    if_offset = args.if_offset if args.if_offset is not None else (0.2 if hardware else 0.0)
    samp_rate = 2e6 if args.samp_rate is None else args.samp_rate
    radio = RadioConfig(
        samp_rate, args.freq, args.gain, args.device, if_offset, args.images_per_frame
    )
    taps = (1.0 + 0.0j,) if args.no_multipath else SimConfig.taps
    sim = SimConfig(args.snr, args.cfo, args.sco_ppm, taps, args.seed)
    return radio, sim


def _record_options(args: argparse.Namespace):
    from rkdsc_gr.ota_radio import RecordConfig

    return RecordConfig(args.record_datatype, args.hw, args.author)


def gnuradio_module(command: str, module: str = "rkdsc_gr.ota_radio"):
    """`module` of the GNU Radio layer, imported when a command needs it (never at start-up, so
    the rest of the CLI runs without GNU Radio); without it, one line naming the command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RkdscError(f"rkdsc {command} needs GNU Radio ({exc}): run 'make setup'") from None


def _shared(args: argparse.Namespace) -> dict:
    """The keyword arguments `run_tx` and `run_rx` both take, from the common options."""
    radio, sim = _configs(args)
    keys = ("mode", "bundle", "record", "n", "rate", "split", "duration", "data_root")
    shared = {k: getattr(args, k) for k in keys}
    return {**shared, "radio": radio, "sim": sim, "record_opts": _record_options(args)}


def cmd_tx(args: argparse.Namespace) -> int:
    out = gnuradio_module("tx").run_tx(image_rate=args.image_rate, **_shared(args))
    print(json_text(out))
    return 0


def cmd_rx(args: argparse.Namespace) -> int:
    out = gnuradio_module("rx").run_rx(
        input_path=args.input,
        decisions=args.decisions,
        doppler=args.doppler,
        datatype=args.datatype,
        samp_rate=args.samp_rate,
        **_shared(args),
    )
    text = json_text(out)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0
