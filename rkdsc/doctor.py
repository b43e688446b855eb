"""`rkdsc doctor`: checks the installation; every problem comes with its one-line fix."""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from rkdsc_core.errors import RkdscError

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return None


def check_gnuradio() -> Check:
    try:
        gr = importlib.import_module("gnuradio.gr")  # probed by name: the core never imports it
    except Exception as exc:  # noqa: BLE001 - numpy 2 raises ImportError/AttributeError
        return Check(
            "gnuradio",
            FAIL,
            f"GNU Radio bindings not importable ({type(exc).__name__}: {exc})",
            "sudo apt-get install gnuradio (or radioconda), then make setup",
        )
    ver = gr.version()
    status = OK if ver.startswith("3.10") else WARN
    return Check("gnuradio", status, ver, "" if status == OK else "tested with GNU Radio 3.10.x")


def check_numpy() -> Check:
    import numpy

    major = int(numpy.__version__.split(".")[0])
    if major >= 2:
        return Check(
            "numpy",
            FAIL,
            f"{numpy.__version__} (GNU Radio 3.10 needs numpy < 2)",
            "pip install 'numpy<2' in the venv (make setup does this)",
        )
    return Check("numpy", OK, f"{numpy.__version__} (< 2 as GNU Radio 3.10 requires)")


def check_module(name: str) -> Check:
    ver = _version(name)
    if ver is None:
        return Check(name, FAIL, "not importable", "make setup (pip install -e '.[dev]')")
    return Check(name, OK, ver)


def check_datasets() -> Check:
    from rkdsc_core.data.datasets import fmnist_source_dir

    try:
        src = fmnist_source_dir()
    except RkdscError as exc:
        return Check(
            "dataset fmnist",
            FAIL,
            str(exc).split(":")[0],
            "sudo apt-get install dataset-fashion-mnist",
        )
    return Check("dataset fmnist", OK, str(src))


def check_grc_blocks() -> Check:
    try:
        from rkdsc_gr.paths import grc_path
    except ImportError:
        return Check("grc blocks", FAIL, "rkdsc_gr not installed", "make setup")
    path = grc_path()
    ymls = sorted(path.glob("rkdsc_*.block.yml"))
    if not ymls:
        return Check("grc blocks", WARN, f"no block YAMLs in {path} yet", "")
    seen = [p for p in os.environ.get("GRC_BLOCKS_PATH", "").split(os.pathsep) if p]
    if any(Path(p).resolve() == path.resolve() for p in seen):
        return Check("grc blocks", OK, f"{len(ymls)} blocks in {path}, on GRC_BLOCKS_PATH")
    return Check(
        "grc blocks",
        WARN,
        f"{len(ymls)} blocks in {path}, not on GRC_BLOCKS_PATH",
        'export GRC_BLOCKS_PATH="$(rkdsc grc-path)"',
    )


def check_grc_gui() -> Check:
    """GNU Radio Companion's GTK 3 front end: PyGObject, the Gtk / PangoCairo typelibs and the
    cairo bridge (Debian: python3-gi, gir1.2-gtk-3.0, python3-gi-cairo; `make setup` installs
    them). Only needed to open GRC: a warning, not a failure."""
    fix = "sudo apt-get install python3-gi python3-gi-cairo gir1.2-gtk-3.0 (or: make setup)"
    try:
        gi = importlib.import_module("gi")
        gi.require_version("Gtk", "3.0")
        gi.require_version("PangoCairo", "1.0")
        importlib.import_module("gi._gi_cairo")
    except (ImportError, ValueError) as exc:
        return Check("grc gui", WARN, f"GNU Radio Companion cannot start ({exc})", fix)
    return Check("grc gui", OK, f"PyGObject {gi.__version__}, Gtk 3.0, PangoCairo, cairo")


def check_bundle() -> Check:
    try:
        from rkdsc_core.bundle import default_bundle_path
    except ImportError:
        return Check("default bundle", WARN, "bundle support not built yet", "")
    path = default_bundle_path()
    if (path / "manifest.yaml").is_file():
        return Check("default bundle", OK, str(path))
    return Check(
        "default bundle",
        WARN,
        f"missing at {path}",
        "rkdsc train --config rkdsc_train/configs/fmnist.yaml",
    )


def run_checks() -> list[Check]:
    return [
        check_gnuradio(),
        check_numpy(),
        check_module("torch"),
        check_module("torchvision"),
        check_module("timm"),
        check_datasets(),
        check_grc_blocks(),
        check_grc_gui(),
        check_bundle(),
    ]


def report(checks: list[Check]) -> dict:
    return {"ok": all(c.status != FAIL for c in checks), "checks": [asdict(c) for c in checks]}
