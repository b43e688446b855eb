"""Model bundle (DESIGN.md §4): a folder with `manifest.yaml` and one `.safetensors` per component.

Components are rebuilt from plain-data specs in the manifest by a fixed registry of builders (the
manifest never names code to import), then loaded strictly; every file is checked against the
SHA-256 the manifest records, so a missing or corrupt tensor fails with a one-line error.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.yaml"
COMPONENTS = ("teacher", "student", "cat", "head")


def default_bundle_path() -> Path:
    """The bundle shipped inside the installed package."""
    return Path(__file__).resolve().parent / "bundles" / "default"


def resolve_bundle_path(bundle: str | Path) -> Path:
    """'default' → the shipped bundle; otherwise a folder path."""
    return default_bundle_path() if str(bundle) == "default" else Path(bundle)


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
    from rkdsc_core.eval.learned_baselines import DeepJsccCnn

    return DeepJsccCnn(**spec)


BUILDERS: dict[str, Callable[[dict], nn.Module]] = {
    "teacher": _build_teacher,
    "student": _build_student,
    "cat": _build_cat,
    "head": _build_head,
    "deepjscc_cnn": _build_deepjscc_cnn,
}


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


def read_manifest(path: str | Path) -> dict:
    """The manifest of a bundle folder; one-line errors for a missing or unreadable file."""
    path = resolve_bundle_path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise RkdscError(f"no bundle at {path} (expected {MANIFEST} and *.safetensors)")
    try:
        manifest = yaml.safe_load(mf.read_text())
    except yaml.YAMLError as exc:
        raise RkdscError(f"bundle manifest {mf} is not valid YAML: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise RkdscError(f"bundle manifest {mf} is not format_version {FORMAT_VERSION}")
    return manifest


def load_component(path: str | Path, name: str, manifest: dict | None = None) -> nn.Module:
    """Rebuild component `name` from its spec and load its verified weights (eval mode, CPU)."""
    path = resolve_bundle_path(path)
    manifest = manifest or read_manifest(path)
    entry = manifest.get("files", {}).get(name)
    if entry is None or name not in manifest:
        raise RkdscError(f"bundle {path} has no component '{name}'")
    file = path / entry["file"]
    if not file.is_file():
        raise RkdscError(f"bundle {path} is missing {entry['file']} (component '{name}')")
    if _sha256(file) != entry["sha256"]:
        raise RkdscError(f"bundle file {file} is corrupt (SHA-256 differs from the manifest)")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise RkdscError(f"bundle file {file} cannot be read: {exc}") from None
    module = BUILDERS[builder_of(manifest, name)](manifest[name]["spec"])
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise RkdscError(f"bundle file {file} does not fit its spec: {' '.join(first)}") from None
    return module.eval()


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state dict as detached, contiguous CPU tensors: what safetensors files hold,
    whatever device the module trained on."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def component_summary(manifest: dict) -> dict[str, Any]:
    """Parameter counts etc. recorded in the manifest (for reports)."""
    return {c: manifest.get(c, {}).get("params") for c in COMPONENTS if c in manifest}


def state_dict_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
