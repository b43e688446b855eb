"""Argument checks of the `rkdsc` command: argparse `type=` validators and the checks that need
the bundle (K within its k_max), all run before any work starts. A bad value ends the command
with one line on stderr and exit status 2 (`OneLineParser`)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from rkdsc_core.channels.snr import SNR_LIMIT_DB
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
            raise argparse.ArgumentTypeError(f"{value} is outside {_span(lo, hi)}")
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
            raise argparse.ArgumentTypeError(f"{value:g} is outside {_span(lo, hi, open_lo)}")
        return value

    return check


def _span(lo, hi, open_lo: bool = False) -> str:
    if hi is None:
        return f"{'>' if open_lo else '>='} {lo:g}" if isinstance(lo, float) else f">= {lo}"
    return f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"


def snr_db(text: str) -> float:
    """Es/N0 in dB: a number within ±SNR_LIMIT_DB, or inf (noiseless); not NaN or -inf."""
    value = _number(text)
    if value == math.inf:
        return value
    if not math.isfinite(value) or abs(value) > SNR_LIMIT_DB:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an SNR in dB (a number within ±{SNR_LIMIT_DB:g}, or inf = noiseless)"
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


def check_rates(args: argparse.Namespace) -> None:
    """After parsing: every --rate K within 1..k_max of the --bundle (read from its manifest,
    no weights loaded); RkdscError otherwise (exit 2)."""
    rates = getattr(args, "rate", None)
    if rates is None or not hasattr(args, "bundle"):
        return
    from rkdsc_core.bundle import read_manifest

    k_max = int(read_manifest(args.bundle)["cat"]["spec"]["k_max"])
    for k in rates if isinstance(rates, list) else [rates]:
        if not 1 <= k <= k_max:
            raise RkdscError(f"argument --rate: K={k} is outside 1..{k_max} (bundle {args.bundle})")
