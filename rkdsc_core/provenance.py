"""Provenance stamped on every JSON a user sees: git sha, command, config, seed, date, versions."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]


def git_sha() -> str:
    """`RKDSC_GIT_SHA` when set (a copy of the tree run elsewhere, e.g. on a GPU machine, whose
    own .git may be stale or absent); else the current commit, with `-dirty` when the tree has
    changes; 'unknown' outside git."""
    if os.environ.get("RKDSC_GIT_SHA"):
        return os.environ["RKDSC_GIT_SHA"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_REPO,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def accelerator() -> str:
    """'cpu', or the CUDA device's name when one is visible (where a result was computed)."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name()}"
    return "cpu"


def provenance(config: Any = None, seed: int | None = None, **extra: Any) -> dict:
    """A dict for the `provenance` key of result JSON files."""
    import torch

    out = {
        "git_sha": git_sha(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "accelerator": accelerator(),
        "seed": seed,
        "config": config,
    }
    out.update(extra)
    return out


def write_report(path: str | os.PathLike, report: dict, args: Any, t0: float) -> Path:
    """Write a script's `report` as JSON to `path` (`outputs.write_json`), closed by `seconds`
    (wall time since `t0`, a `time.time()`) and the `provenance` of its parsed `args` (seed
    `args.seed`); returns the path."""
    from rkdsc_core.outputs import write_json

    report = {
        **report,
        "seconds": round(time.time() - t0, 1),
        "provenance": provenance(config=vars(args), seed=args.seed),
    }
    return write_json(path, report)
