"""Argument checks of the `rkdsc` command: argparse `type=` validators and the checks that need
the bundle (K within its k_max), all run before any work starts. A bad value ends the command
with one line on stderr and exit status 2 (`OneLineParser`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from rkdsc_core.errors import RkdscError
from rkdsc_core.outputs import output_problem


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`rkdsc eval: error: argument --n: …`) and
    exit status 2, without the usage block argparse prints first."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


Check = Callable[[str], object]


def _number(text: str, kind: type = float):
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """int within [lo, hi] (None: unbounded)."""

    def check(text: str) -> int:
        value = _number(text, int)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_span(lo, hi)}, got {value}")
        return value

    return check


def real(lo: float | None = None, hi: float | None = None, open_lo: bool = False) -> Check:
    """Finite float within [lo, hi] ((lo, hi] with `open_lo`)."""

    def check(text: str) -> float:
        value = _number(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        low_bad = lo is not None and (value <= lo if open_lo else value < lo)
        if low_bad or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_span(lo, hi, open_lo)}, got {value:g}")
        return value

    return check


def _span(lo, hi, open_lo: bool = False) -> str:
    if hi is None:
        return f"{'>' if open_lo else '>='} {lo:g}"
    return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}]"


def snr_db(text: str) -> float:
    """Es/N0 in dB: a number within ±SNR_LIMIT_DB, or inf (noiseless); not NaN or -inf."""
    from rkdsc_core.channels.snr import SNR_LIMIT_DB  # imports torch: only when parsing an SNR

    value = _number(text)
    if value == math.inf and text.strip().lstrip("+").lower() in ("inf", "infinity"):
        return value  # written as inf: not a number too large for a float
    if not math.isfinite(value) or abs(value) > SNR_LIMIT_DB:
        raise argparse.ArgumentTypeError(
            f"must be an SNR in dB within ±{SNR_LIMIT_DB:g}, or inf (noiseless), got {text!r}"
        )
    return value


def listed(item: Check) -> Check:
    """Comma-separated values, each checked by `item`; at least one."""

    def check(text: str) -> list:
        values = [item(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        return values

    return check


def output_file(text: str) -> str:
    """A file the command will write: checked now, so a run never fails at its end."""
    problem = output_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


def output_folder(text: str) -> str:
    problem = output_problem(text, folder=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}")
    return text


def check_before_work(args: argparse.Namespace) -> None:
    """After parsing, before any work: `train`'s config (values and out_dir), the --bundle's
    manifest (read and checked, no weights loaded) and every --rate K within its 1..k_max;
    RkdscError otherwise (exit 2)."""
    if getattr(args, "command", None) == "train":
        from rkdsc_train.pipeline import resolve_config

        resolve_config(args.config, args.overrides)
    if not hasattr(args, "bundle"):
        return
    from rkdsc_core.bundle import read_manifest

    k_max = int(read_manifest(args.bundle)["cat"]["spec"]["k_max"])
    rates = getattr(args, "rate", None)
    for k in [] if rates is None else rates if isinstance(rates, list) else [rates]:
        if not 1 <= k <= k_max:
            raise RkdscError(f"argument --rate: K={k} is outside 1..{k_max} (bundle {args.bundle})")


SEED = integer(0, 2**32 - 1)
FD_TS = real(0.0, 0.5)  # normalised Doppler f_D·T_s, cycles per symbol
K_FACTOR = real(0.0, 1e4)  # Rician K (LOS / scattered power)
SAMP_RATE = real(0.0, 1e10, open_lo=True)  # S/s
FREQ = real(0.0, 1e11)  # Hz
GAIN = real(-100.0, 200.0)  # dB
CFO = real(-0.5, 0.5)  # cycles/sample
SCO_PPM = real(-1000.0, 1000.0)  # sample-clock offset: crystals are within ±100 ppm
IMAGE_RATE = real(0.0, 1e6)  # images/s; 0 = as fast as possible


def if_offset(text: str) -> float:
    """Burst offset from the carrier, cycles/sample: the whole burst (RRC bandwidth
    (1 + rolloff)/sps) must stay inside ±0.5, else it aliases."""
    from rkdsc_core.phy.config import FrameConfig

    cfg = FrameConfig()
    limit = 0.5 - (1 + cfg.rolloff) / (2 * cfg.sps)
    return real(-limit, limit)(text)


def baselines(text: str) -> str:
    """`--baselines`: "all" or comma-separated names of `rkdsc_core.eval.baselines`, checked now
    (before the bundle is read); the text itself is passed on."""
    from rkdsc_core.eval.report import baseline_names  # imports torch: only when given

    try:
        baseline_names(text)
    except RkdscError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
