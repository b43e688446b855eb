"""Model bundle (DESIGN.md §4): a folder with `manifest.yaml` and one `.safetensors` per component.

Components are rebuilt from plain-data specs in the manifest by a fixed registry of builders (the
manifest never names code to import), then loaded strictly; every file is checked against the
SHA-256 the manifest records, so a missing or corrupt tensor fails with a one-line error.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rkdsc_core.data.spec import DatasetSpec
from rkdsc_core.errors import RkdscError, one_line
from rkdsc_core.registry import Registry
from rkdsc_core.torch_utils import count_params, cpu_state  # noqa: F401 - count_params: re-export
from rkdsc_core.transceiver import Receiver, Transmitter, fold_batchnorm

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.yaml"
COMPONENTS = ("teacher", "student", "cat", "head")


def default_bundle_path() -> Path:
    """The bundle shipped inside the installed package."""
    return Path(__file__).resolve().parent / "bundles" / "default"


def bundle_ref(path: str | Path) -> str:
    """How reports name a bundle without machine-specific paths: "default" for the shipped one,
    else its path relative to the working directory when inside it, else the path as given."""
    p = Path(path).resolve()
    if p == default_bundle_path():
        return "default"
    try:
        return str(p.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_bundle_path(bundle: str | Path) -> Path:
    """'default' → the shipped bundle; a folder path; else the name of another shipped bundle
    (`rkdsc_core/bundles/<name>/`) when one of that name exists."""
    if str(bundle) == "default":
        return default_bundle_path()
    shipped = default_bundle_path().parent / str(bundle)
    if not Path(bundle).exists() and "/" not in str(bundle) and shipped.is_dir():
        return shipped
    return Path(bundle)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _build_teacher(spec: dict) -> nn.Module:
    from rkdsc_core.models.teacher import teacher_from_spec

    return teacher_from_spec(spec)


def _build_student(spec: dict) -> nn.Module:
    from rkdsc_core.nas.student import student_from_spec

    return student_from_spec(spec)


def _build_cat(spec: dict) -> nn.Module:
    from rkdsc_core.codec.cat import CATCodec, CATConfig

    return CATCodec(CATConfig.from_dict(spec))


def _build_head(spec: dict) -> nn.Module:
    return nn.Linear(int(spec["in_features"]), int(spec["num_classes"]))


def _build_deepjscc_cnn(spec: dict) -> nn.Module:
    from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn

    return DeepJsccCnn(**spec)


#: The component-builder registry: builder name → spec → module (the manifest never names code).
BUILDERS: Registry[Callable[[dict], nn.Module]] = Registry(
    "bundle component builder",
    {
        "teacher": _build_teacher,
        "student": _build_student,
        "cat": _build_cat,
        "head": _build_head,
        "deepjscc_cnn": _build_deepjscc_cnn,
    },
)


def builder_of(manifest: dict, name: str) -> str:
    """The registry builder of component `name`: its manifest `builder`, else its own name
    (extra components such as `baseline.single-stage.cat` name a builder like `cat`)."""
    builder = manifest.get(name, {}).get("builder", name)
    if builder not in BUILDERS:
        raise RkdscError(f"bundle component '{name}' names an unknown builder '{builder}'")
    return builder


def save_bundle(path: str | Path, manifest: dict, modules: dict[str, nn.Module]) -> Path:
    """Write `modules` (component → module, each with `spec` in `manifest[component]`) as
    safetensors plus the manifest, with file names and SHA-256 recorded."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"format_version": FORMAT_VERSION, **manifest, "files": {}}
    for name, module in modules.items():
        builder = manifest.get(name, {}).get("builder", name)
        if builder not in BUILDERS:
            known = ", ".join(BUILDERS)
            raise ValueError(f"unknown bundle component '{name}' (builders: {known})")
        if "spec" not in manifest.get(name, {}):
            raise ValueError(f"manifest['{name}'] needs a 'spec' to rebuild the module")
        fname = f"{name}.safetensors"
        save_file(cpu_state(module), str(path / fname))
        manifest["files"][name] = {"file": fname, "sha256": _sha256(path / fname)}
    (path / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


MAX_MANIFEST_BYTES = 1 << 22  # 4 MiB: the default manifest is ~20 KiB


def read_manifest(path: str | Path) -> dict:
    """The manifest of a bundle folder, checked (`check_manifest`); one-line RkdscError for a
    missing, unreadable or malformed file."""
    path = resolve_bundle_path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise RkdscError(f"no bundle at {path} (expected {MANIFEST} and *.safetensors)")
    if mf.stat().st_size > MAX_MANIFEST_BYTES:
        raise RkdscError(f"bundle manifest {mf} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = yaml.safe_load(mf.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RkdscError(f"bundle manifest {mf} is not valid YAML: {one_line(exc)}") from None
    except RecursionError:
        raise RkdscError(f"bundle manifest {mf} is nested too deeply") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise RkdscError(f"bundle manifest {mf} is not format_version {FORMAT_VERSION}")
    check_manifest(manifest, mf)
    return manifest


def _is_int(v, lo: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_manifest(manifest: dict, where: str | Path = MANIFEST) -> None:
    """Types and ranges of the manifest keys the loader and runtime read; RkdscError naming the
    first bad key. Component files must be plain names inside the bundle folder."""

    def need(ok: bool, key: str, want: str) -> None:
        if not ok:
            raise RkdscError(f"bundle manifest {where}: '{key}' must be {want}")

    ds = manifest.get("dataset")
    need(isinstance(ds, dict), "dataset", "a mapping")
    need(isinstance(ds.get("name"), str), "dataset.name", "a string")
    classes = ds.get("classes")
    need(isinstance(classes, list) and len(classes) >= 1, "dataset.classes", "a non-empty list")
    size = ds.get("image_size")
    need(
        isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size),
        "dataset.image_size",
        "[height, width] of positive integers",
    )
    need(_is_int(ds.get("channels")), "dataset.channels", "a positive integer")
    for key in ("mean", "std"):
        v = ds.get(key)
        need(
            isinstance(v, list) and len(v) in (1, ds["channels"]) and all(_is_num(x) for x in v),
            f"dataset.{key}",
            "a list of finite numbers, one or one per channel",
        )
    need(all(x > 0 for x in ds["std"]), "dataset.std", "positive")
    for comp in ("student", "cat", "head"):
        need(isinstance(manifest.get(comp), dict), comp, "a mapping")
        need(isinstance(manifest[comp].get("spec"), dict), f"{comp}.spec", "a mapping")
    spec = manifest["cat"]["spec"]
    need(_is_int(spec.get("k_max")), "cat.spec.k_max", "a positive integer")
    rates = spec.get("rates")
    need(
        isinstance(rates, list)
        and len(rates) >= 1
        and all(_is_int(k) and k <= spec["k_max"] for k in rates),
        "cat.spec.rates",
        f"a non-empty list of K in 1..k_max={spec['k_max']}",
    )
    rng = manifest["cat"].get("snr_range_db")
    need(
        rng is None
        or (
            isinstance(rng, list)
            and len(rng) == 2
            and all(_is_num(v) for v in rng)
            and rng[0] < rng[1]
        ),
        "cat.snr_range_db",
        "[low, high] dB with low < high",
    )
    files = manifest.get("files")
    need(isinstance(files, dict), "files", "a mapping of component to {file, sha256}")
    for name, entry in files.items():
        key = f"files.{name}"
        need(isinstance(entry, dict), key, "a mapping with 'file' and 'sha256'")
        fname, digest = entry.get("file"), entry.get("sha256")
        need(
            isinstance(fname, str) and fname == Path(fname).name and fname not in ("", ".", ".."),
            f"{key}.file",
            "a file name inside the bundle folder (no path)",
        )
        need(
            isinstance(digest, str)
            and len(digest) == 64
            and all(c in "0123456789abcdef" for c in digest),
            f"{key}.sha256",
            "64 lowercase hex digits",
        )


def load_component(path: str | Path, name: str, manifest: dict | None = None) -> nn.Module:
    """Rebuild component `name` from its spec and load its verified weights (eval mode, CPU)."""
    path = resolve_bundle_path(path)
    manifest = manifest or read_manifest(path)
    entry = manifest.get("files", {}).get(name)
    if entry is None or not isinstance(manifest.get(name), dict):
        raise RkdscError(f"bundle {path} has no component '{name}'")
    file = path / entry["file"]
    if file.resolve().parent != path.resolve():  # a link out of the folder (check_manifest)
        raise RkdscError(f"bundle {path}: component '{name}' file lies outside the bundle folder")
    if not file.is_file():
        raise RkdscError(f"bundle {path} is missing {entry['file']} (component '{name}')")
    if _sha256(file) != entry["sha256"]:
        raise RkdscError(f"bundle file {file} is corrupt (SHA-256 differs from the manifest)")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise RkdscError(f"bundle file {file} cannot be read: {exc}") from None
    try:
        module = BUILDERS[builder_of(manifest, name)](manifest[name]["spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RkdscError(
            f"bundle {path}: the spec of component '{name}' is malformed "
            f"({type(exc).__name__}: {one_line(exc)})"
        ) from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise RkdscError(f"bundle file {file} does not fit its spec: {' '.join(first)}") from None
    return module.eval()


def component_summary(manifest: dict) -> dict[str, Any]:
    """Parameter counts etc. recorded in the manifest (for reports)."""
    return {c: manifest.get(c, {}).get("params") for c in COMPONENTS if c in manifest}


def trained_snr_range(manifest: dict) -> tuple[float, float] | None:
    """(lo, hi) dB from the manifest's `cat.snr_range_db`; None when the bundle records none."""
    rng = manifest.get("cat", {}).get("snr_range_db")
    return None if rng is None else (float(rng[0]), float(rng[1]))


class Bundle:
    """A loaded model bundle: `transmitter(rate)`, `receiver()`, `choose_rate(snr, target)`."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path = resolve_bundle_path(path)
        self.manifest = read_manifest(self.path)
        self.device = torch.device(device)
        self.dataset = DatasetSpec.from_manifest(self.manifest.get("dataset") or {})
        self.norm = self.dataset.norm
        self.image_shape = self.dataset.shape
        self.classes = self.dataset.classes
        self.student = load_component(self.path, "student", self.manifest).to(self.device)
        self.cat = load_component(self.path, "cat", self.manifest).to(self.device)
        self.head = load_component(self.path, "head", self.manifest).to(self.device)
        self.rates = tuple(int(k) for k in self.manifest["cat"]["spec"]["rates"])
        self.k_max = int(self.manifest["cat"]["spec"]["k_max"])
        #: SNR range (dB) the CAT decoder was trained at; the receiver clamps the SNR it tells
        #: the decoder into it (README "Reliability": a clean link decodes as the range's top)
        self.snr_range_db = trained_snr_range(self.manifest)
        self._teacher = None
        self._fast_student = None
        # modules are shared by blocks in several threads; TX and RX use disjoint modules
        self._tx_lock = threading.Lock()
        self._rx_lock = threading.Lock()

    @property
    def teacher(self):
        if self._teacher is None:
            self._teacher = load_component(self.path, "teacher", self.manifest).to(self.device)
        return self._teacher

    def inference_student(self) -> torch.nn.Module:
        """The student with BatchNorm folded into its convolutions (built once; the student
        itself when folding fails or disagrees with it). Call with the TX lock held."""
        if self._fast_student is None:
            self._fast_student = fold_batchnorm(self.student, self.image_shape, self.device)
        return self._fast_student

    def check_rate(self, rate: int) -> int:
        rate = int(rate)
        if not 1 <= rate <= self.k_max:
            raise ValueError(f"rate K={rate} outside 1..{self.k_max} (trained: {self.rates})")
        return rate

    def transmitter(self, rate: int) -> Transmitter:
        rate = self.check_rate(rate)
        with self._tx_lock:
            self.inference_student()  # built now, not in the first encode of a running graph
        return Transmitter(self, rate)

    def receiver(self) -> Receiver:
        return Receiver(self)

    def stop_rule(self):
        """The IR receiver's calibrated stopping rule (`rkdsc_core.adapt.StopRule`) from the
        manifest's `ir_stop_rule`; ValueError when the bundle has none."""
        from rkdsc_core.adapt import StopRule

        table = self.manifest.get("ir_stop_rule")
        if not table:
            raise ValueError("bundle has no 'ir_stop_rule' (scripts/rate_table.py writes it)")
        return StopRule.from_dict(table)

    def choose_rate(self, snr_db: float, target: float, channel: str = "awgn") -> int:
        """Smallest trained K whose measured accuracy at the nearest evaluated SNR not above
        `snr_db` reaches `target` (fraction of clean accuracy); the largest K if none does.
        The table (`rate_table` in the manifest) is measured on validation images."""
        table = self.manifest.get("rate_table", {}).get(channel)
        if not table:
            raise ValueError(f"bundle has no rate table for channel '{channel}'")
        snrs = np.asarray(table["snr_db"], float)
        i = int(np.searchsorted(snrs, snr_db, side="right") - 1)
        if i < 0:
            return max(table["rates"])
        for k, accs in zip(table["rates"], table["accuracy"]):
            if accs[i] >= target * table["clean_accuracy"]:
                return int(k)
        return int(max(table["rates"]))


_CACHE: dict[tuple[str, str], Bundle] = {}


def load_bundle(path: str | Path = "default", device: str = "cpu") -> Bundle:
    """Load (once per process) the bundle at `path` ('default' = the shipped one)."""
    key = (str(resolve_bundle_path(path).resolve()), device)
    if key not in _CACHE:
        _CACHE[key] = Bundle(path, device)
    return _CACHE[key]
