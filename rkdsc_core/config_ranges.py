"""Value ranges of the training configuration, checked when it is loaded (`load_config`), so that
a bad value fails at once with a `ConfigError` naming its dotted key instead of deep in a stage.

Types are checked by `rkdsc_core.config`; here: every float finite, counts and sizes in range,
names from their registries, cross-key consistency (rates within k_max, weights per channel).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from rkdsc_core.errors import ConfigError

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

# Rules by field name, wherever the field sits: (test, what the key accepts).
_BY_NAME: list[tuple[Callable[[str], bool], Callable[[Any], bool], str]] = [
    (lambda n: n.endswith("epochs"), lambda v: v >= 0, ">= 0"),
    (lambda n: n == "batch_size", lambda v: v >= 1, ">= 1"),
    (
        lambda n: n in ("lr", "w_lr", "alpha_lr", "finetune_lr", "student_lr"),
        lambda v: v > 0,
        "> 0",
    ),
    (lambda n: n.endswith("weight_decay") or n == "w_lr_min", lambda v: v >= 0, ">= 0"),
    (lambda n: n.endswith("_limit") and n != "val_limit", lambda v: v >= 1, ">= 1"),
    (lambda n: n.endswith("_weight") or n in ("beta_ce", "lambda_cost"), lambda v: v >= 0, ">= 0"),
    (lambda n: n in ("temperature", "kd_temperature"), lambda v: v > 0, "> 0"),
    (lambda n: n.endswith("grad_clip"), lambda v: v > 0, "> 0"),
    (lambda n: n == "num_threads", lambda v: v >= 1, ">= 1"),
    (lambda n: n == "early_stop_patience", lambda v: v >= 0, ">= 0 (0: off)"),
    (lambda n: n.endswith("_prob"), lambda v: 0 <= v <= 1, "in [0, 1]"),
]

# Rules by dotted key: (test, what the key accepts).
_BY_KEY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: v >= 0, ">= 0"),
    "device": (lambda v: bool(DEVICE.match(v)), "auto, cpu, mps, cuda or cuda:N"),
    "out_dir": (lambda v: v.strip() != "", "a folder path"),
    "data.val_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.num_workers": (lambda v: v >= 0, ">= 0"),
    "data.image_size": (lambda v: v >= 1, ">= 1"),
    "teacher.label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "teacher.img_size": (lambda v: v >= 1, ">= 1"),
    "teacher.embed_dim": (lambda v: v >= 1, ">= 1"),
    "store.augmented_views": (lambda v: v >= 0, ">= 0"),
    "store.augment_pad": (lambda v: v >= 0, ">= 0"),
    "search.cost_metric": (lambda v: v in ("params", "flops"), "params or flops"),
    "search.cost_budget": (lambda v: v > 0, "> 0"),
    "search.w_momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "stage1.drop_path": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "stage2.val_limit": (lambda v: v >= 0, ">= 0"),
    "stage2.channel.rician_k": (lambda v: v >= 0, ">= 0"),
    "stage2.channel.fd_ts": (lambda v: 0 <= v <= 0.5, "in [0, 0.5]"),
    "stage2.channel.num_pilots": (lambda v: v >= 1, ">= 1"),
    "stage2.finetune_snr_max_db": (lambda v: -100 <= v <= 100, "in [-100, 100] dB"),
    "stage2.channel.snr_min_db": (lambda v: -100 <= v <= 100, "in [-100, 100] dB"),
    "stage2.channel.snr_max_db": (lambda v: -100 <= v <= 100, "in [-100, 100] dB"),
    "export.rate_table_n": (lambda v: v >= 1, ">= 1"),
}
for _key in ("init_channels", "layers", "nodes", "stem_multiplier"):
    _BY_KEY[f"search.{_key}"] = (lambda v: v >= 1, ">= 1")
    _BY_KEY[f"stage1.{_key}"] = (lambda v: v >= 1, ">= 1")
for _key in ("k_max", "cat_tokens", "cat_d_model", "cat_heads", "cat_enc_layers", "cat_dec_layers"):
    _BY_KEY[f"stage2.{_key}"] = (lambda v: v >= 1, ">= 1")
_BY_KEY["baselines.rate"] = (lambda v: v >= 1, ">= 1")
_BY_KEY["baselines.deepjscc_width"] = (lambda v: v >= 1, ">= 1")


def _leaves(obj: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted key, field name, value) of every non-dataclass field of config `obj`."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f.name, value


def _bad(key: str, value: Any, accepts: str) -> ConfigError:
    return ConfigError(f"config key '{key}' must be {accepts}, got {value!r}")


def _one_of(key: str, values: list, known) -> None:
    if not values:
        raise ConfigError(f"config key '{key}' must not be empty")
    for i, v in enumerate(values):
        if v not in known:
            raise ConfigError(f"config key '{key}[{i}]': unknown '{v}' (known: {', '.join(known)})")


def check_ranges(cfg: Any) -> None:
    """Raise ConfigError naming the first key of `cfg` (a `Config`) whose value is out of range."""
    for key, name, value in _leaves(cfg):
        items = value if isinstance(value, list) else [value]
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                raise _bad(key, value, "a finite number")
        if value is None or isinstance(value, bool):
            continue
        rules = [(t, d) for match, t, d in _BY_NAME if match(name)]
        rules += [_BY_KEY[key]] if key in _BY_KEY else []
        for test, accepts in rules:
            if not all(test(v) for v in items):
                raise _bad(key, value, accepts)
    _check_names_and_consistency(cfg)


def _check_names_and_consistency(cfg: Any) -> None:
    from rkdsc_core.channels.link import CSI_MODES, EQUALIZERS, FADING_MODELS
    from rkdsc_core.data.datasets import DATASETS
    from rkdsc_core.nas.ops import OPS

    if cfg.data.name not in DATASETS:
        raise ConfigError(
            f"config key 'data.name': unknown '{cfg.data.name}' (known: {', '.join(DATASETS)})"
        )
    s2, mix = cfg.stage2, cfg.stage2.channel
    _one_of("stage2.channel.channels", mix.channels, tuple(FADING_MODELS))
    _one_of("export.rate_table_channels", cfg.export.rate_table_channels, tuple(FADING_MODELS))
    _one_of("search.primitives", cfg.search.primitives, tuple(OPS))
    if mix.csi not in CSI_MODES:
        raise _bad("stage2.channel.csi", mix.csi, f"one of {', '.join(CSI_MODES)}")
    if mix.equalizer not in EQUALIZERS:
        raise _bad("stage2.channel.equalizer", mix.equalizer, f"one of {', '.join(EQUALIZERS)}")
    if mix.weights is not None and (
        len(mix.weights) != len(mix.channels) or min(mix.weights) < 0 or sum(mix.weights) <= 0
    ):
        raise _bad("stage2.channel.weights", mix.weights, "one weight >= 0 per channel, not all 0")
    if mix.snr_min_db > mix.snr_max_db:
        raise _bad("stage2.channel.snr_min_db", mix.snr_min_db, "<= stage2.channel.snr_max_db")
    if not s2.rates or not all(1 <= k <= s2.k_max for k in s2.rates):
        raise _bad("stage2.rates", s2.rates, f"a list of K in 1..stage2.k_max={s2.k_max}")
    if not 1 <= cfg.baselines.rate <= s2.k_max:
        raise _bad("baselines.rate", cfg.baselines.rate, f"in 1..stage2.k_max={s2.k_max}")
    if s2.cat_d_model % s2.cat_heads:
        raise _bad("stage2.cat_heads", s2.cat_heads, f"a divisor of cat_d_model={s2.cat_d_model}")
