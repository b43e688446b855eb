"""Output paths checked before any work starts: a run must not fail at its end because the
report cannot be written (issue 21). Nothing is left behind here; the writers create folders."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _can_write_in(folder: Path) -> bool:
    """A real probe (a temporary file, removed at once): permission bits say nothing to root and
    nothing about read-only mounts."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def output_problem(path: str | os.PathLike, folder: bool = False) -> str | None:
    """Why `path` (a file, or a folder when `folder`) cannot be written, or None when it can."""
    p = Path(path).expanduser()
    if not str(path).strip() or (not folder and p.name in ("", ".", "..")):
        return "is not a file name"
    if p.exists():
        if p.is_dir() != folder:
            return "is a folder" if p.is_dir() else "is a file, not a folder"
        if folder:
            return None if _can_write_in(p) else "is not writable"
        try:
            with open(p, "ab"):  # opening to append changes nothing
                return None
        except OSError as exc:
            return f"is not writable ({exc.strerror})"
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {parent} is not a folder"
    if not _can_write_in(parent):
        return f"cannot be created: {parent} is not writable"
    return None


def json_safe(obj):
    """`obj` with every non-finite float replaced: ±inf by the strings "inf" / "-inf" (an SNR of
    a noiseless link), NaN by None; JSON itself has neither."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def json_text(obj, indent: int | None = 2) -> str:
    """Strict JSON of `obj` (see `json_safe`)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write `obj` as strict JSON (`json_text`) to `path`, creating its folder; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json_text(obj))
    return p
