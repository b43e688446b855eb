"""Output paths checked before any work starts: a run must not fail at its end because the
report cannot be written (issue 21). Nothing is left behind here; the writers create folders."""

from __future__ import annotations

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
