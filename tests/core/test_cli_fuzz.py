"""CLI fuzz (issue 21): every subcommand with a table of bad values per option. Each must end with
one line on stderr and exit status 2 before any work starts (the commands themselves are
replaced by a tripwire), never a traceback. In-process through `rkdsc.cli.main`; one subprocess
checks the installed console script the same way."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rkdsc.cli as cli

BAD_PATHS = ["/proc/version/x.json", "/dev/null/out.json", ""]

# option → bad values, shared by the subcommands that take the option
SNR = ["nan", "-nan", "-inf", "-1e9", "1e9", "x", "", "3,,nan", "1e400"]
COUNT = ["-5", "0", "-9995", "1.5", "x", "1e3", ""]
RATE = ["0", "-1", "1000", "65", "x", "2.5"]
SEED = ["-1", "x", "1.5", str(2**40)]

TABLE: dict[str, dict[str, list[str]]] = {
    "eval": {
        "--n": COUNT,
        "--snr": SNR,
        "--rate": RATE + ["4,1000", ","],
        "--rate-snr": ["nan", "-inf", "1e9"],
        "--seed": SEED,
        "--json": BAD_PATHS,
        "--plot": BAD_PATHS,
        "--channel": ["foo", ""],
        "--split": ["val"],
        "--bundle": ["/nonexistent/bundle", "/proc"],
    },
    "loopback": {
        "--n": COUNT,
        "--snr": SNR,
        "--rate": RATE,
        "--seed": SEED,
        "--fd-ts": ["5", "-0.1", "nan", "inf"],
        "--k-factor": ["-1", "nan", "inf", "1e9"],
        "--json": BAD_PATHS,
        "--phy": ["ofdm"],
        "--channel": ["foo"],
        "--bundle": ["/nonexistent/bundle"],
    },
    "bench": {"--n": COUNT, "--json": BAD_PATHS, "--bundle": ["/nonexistent/bundle"]},
    "demo": {
        "--n": COUNT,
        "--rate": RATE,
        "--out": ["/dev/null", "/proc/version/x"],
        "--bundle": ["/nonexistent"],
    },
}
RADIO = {
    "--rate": RATE,
    "--samp-rate": ["0", "-2e6", "nan", "inf"],
    "--freq": ["-1", "nan"],
    "--gain": ["nan", "1e9"],
    "--if-offset": ["0.4", "-0.4", "nan"],
    "--duration": ["0", "-1", "nan"],
    "--snr": SNR,
    "--cfo": ["0.6", "nan"],
    "--sco-ppm": ["1e5", "-1e5", "nan"],
    "--seed": SEED,
    "--record": BAD_PATHS,
    "--mode": ["wifi"],
    "--split": ["val"],
    "--bundle": ["/nonexistent/bundle"],
}
TABLE["tx"] = {**RADIO, "--n": ["-1", "x"], "--image-rate": ["-1", "nan", "1e9"]}
TABLE["rx"] = {
    **RADIO,
    "--n": COUNT,
    "--doppler": ["5", "-1", "nan"],
    "--json": BAD_PATHS,
    "--decisions": BAD_PATHS,
}
BASE = {"tx": ["--mode", "sim"], "rx": ["--mode", "sim"]}

TRAIN_BAD = [
    ["teacher.epochs=-5"],
    ["teacher.batch_size=0"],
    ["teacher.lr=.nan"],
    ["data.val_fraction=1.5"],
    ["stage2.rates=[1000]"],
    ["device=tpu"],
    ["stage2.channel.channels=[foo]"],
    ["out_dir=/proc/version/run"],
    ["nosuchkey=1"],
    ["teacher.epochs"],
    ["teacher.epochs=1", "teacher.epochs=2"],
]

CASES = [
    [cmd, *BASE.get(cmd, []), f"{opt}={val}"]
    for cmd, opts in TABLE.items()
    for opt, vals in opts.items()
    for val in vals
]
CASES += [["train", "--config", "rkdsc_train/configs/smoke.yaml", *o] for o in TRAIN_BAD]
CASES += [["train", "--config", "/nonexistent.yaml"], ["train"], ["doctor", "--bogus"]]
CASES += [["grc-path", "extra"], ["nosuchcommand"], []]
CASES += [[cmd, "--no-such-option"] for cmd in TABLE]


@pytest.fixture
def tripwire(monkeypatch):
    """Every command body raises: a bad argument must be refused before any of them runs."""

    def work(args):
        raise AssertionError(f"work started for {args}")

    for name in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, name, work)


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) or "<none>" for c in CASES])
def test_bad_argument_is_one_line_exit_2(argv, tripwire, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err


def test_the_fuzz_table_is_not_all_refused_for_one_reason(tripwire, capsys):
    """The good values next to the bad ones parse (else every case above would pass trivially),
    and reach the command (the tripwire)."""
    good = {
        "eval": ["--n", "5", "--snr", "inf,0,-10", "--rate", "4,16", "--seed", "3"],
        "loopback": ["--snr", "inf", "--fd-ts", "0.5", "--k-factor", "0"],
        "bench": ["--n", "1"],
        "demo": ["--rate", "64"],
        "tx": ["--mode", "sim", "--n", "0", "--if-offset", "0.3", "--sco-ppm", "-100"],
        "rx": ["--mode", "sim", "--snr", "inf", "--doppler", "0.01"],
    }
    for cmd, argv in good.items():
        with pytest.raises(AssertionError, match="work started"):
            cli.main([cmd, *argv])


def test_console_script_prints_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "rkdsc.cli", "eval", "--snr", "nan"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
