"""Issue 23's check: record N frames as cf32 with `rkdsc tx --mode file`, convert the samples to
each datatype with numpy (the meta copied with a new core:datatype, as a user edits it), replay
each with `rkdsc rx --mode file`, and print frames, accuracy and mean estimated SNR per datatype;
plus a ci16_le recording (`--record-datatype`) and a bare .cs8 file, each through sigmf_validate
where there is metadata.

    .venv/bin/python scripts/sigmf_replay_check.py --out /tmp/sigmf_check [--n 200 --rate 16]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from rkdsc_gr.sigmf_meta import DATATYPES, quantise, sigmf_paths

BIN = Path(sys.executable).parent


def sh(*cmd: str) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def convert(base: Path, dst: Path, name: str) -> None:
    x = np.fromfile(sigmf_paths(base)[0], np.complex64)
    quantise(x, DATATYPES[name]).tofile(sigmf_paths(dst)[0])
    doc = json.loads(sigmf_paths(base)[1].read_text())
    doc["global"]["core:datatype"] = name
    sigmf_paths(dst)[1].write_text(json.dumps(doc, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--rate", type=int, default=16)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base, common = args.out / "R", ("--n", str(args.n), "--rate", str(args.rate))
    sh(BIN / "rkdsc", "tx", "--mode", "file", "--record", base, *common)
    sh(BIN / "rkdsc", "tx", "--mode", "file", "--record", args.out / "R16", *common,
       "--record-datatype", "ci16_le")  # fmt: skip
    sh(BIN / "sigmf_validate", sigmf_paths(base)[1], sigmf_paths(args.out / "R16")[1])
    inputs = {"cf32_le (recorded)": [base], "ci16_le (recorded)": [args.out / "R16"]}
    for name in DATATYPES:
        if name != "cf32_le":
            convert(base, args.out / f"R_{name}", name)
            inputs[f"{name} (numpy)"] = [args.out / f"R_{name}"]
    raw = args.out / "R_raw.cs8"  # what hackrf_transfer -r writes: ci8, no metadata
    shutil.copy(sigmf_paths(args.out / "R_ci8")[0], raw)
    inputs["ci8 raw .cs8"] = [raw, "--samp-rate", "2e6"]
    print(f"{'input':22} {'frames':>6} {'accuracy':>8} {'SNR dB':>7}")
    for label, (path, *extra) in inputs.items():
        out = json.loads(sh(BIN / "rkdsc", "rx", "--mode", "file", "--input", path, *extra))
        snr = out["rx"]["snr_db_mean"]
        print(f"{label:22} {out['decisions']:6d} {out['accuracy']:8.3f} {snr:7.2f}")


if __name__ == "__main__":
    main()
