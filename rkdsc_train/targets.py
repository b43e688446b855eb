"""Teacher targets for a configured split, through the feature store: what search and stage 1 call.

The trained teacher is `<cfg.out_dir>/teacher/teacher.safetensors` (stage "teacher"); its outputs
are computed once per (dataset, split, images, teacher weights, views) and memory-mapped after.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rkdsc_core.config import Config
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.feature_store import FeatureStore, StoreEntry
from rkdsc_core.data.targets import TeacherTargets
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.errors import RkdscError
from rkdsc_core.models.teacher import Teacher, load_teacher
from rkdsc_train.context import StageContext, resolve_device

log = logging.getLogger(__name__)

TEACHER_WEIGHTS = Path("teacher") / "teacher.safetensors"


def _cfg(ctx_or_cfg: StageContext | Config) -> Config:
    return ctx_or_cfg.cfg if isinstance(ctx_or_cfg, StageContext) else ctx_or_cfg


def teacher_weights_path(ctx_or_cfg: StageContext | Config) -> Path:
    return Path(_cfg(ctx_or_cfg).out_dir) / TEACHER_WEIGHTS


def load_trained_teacher(ctx_or_cfg: StageContext | Config) -> Teacher:
    """The teacher written by stage "teacher" of this run (eval mode, CPU)."""
    path = teacher_weights_path(ctx_or_cfg)
    if not path.is_file():
        raise RkdscError(
            f"no trained teacher at {path}: run 'rkdsc train --config ... --stage teacher' first"
        )
    return load_teacher(path)


def store_entry(
    ctx_or_cfg: StageContext | Config,
    split: str,
    views: int | None = None,
    teacher: Teacher | None = None,
) -> StoreEntry:
    """The store entry of `split` (built when absent). `views` defaults to 1 +
    `store.augmented_views` for train and 1 (clean only) for test."""
    cfg = _cfg(ctx_or_cfg)
    data = load_configured(cfg.data, split)
    if views is None:
        views = 1 + (cfg.store.augmented_views if split == "train" else 0)
    teacher = teacher if teacher is not None else load_trained_teacher(cfg)
    device = (
        ctx_or_cfg.device if isinstance(ctx_or_cfg, StageContext) else resolve_device(cfg.device)
    )
    return FeatureStore(cfg.store.root).get_or_build(
        teacher.to(device),
        data.name,
        split,
        data.images,
        data.labels,
        Normalisation.for_dataset(cfg.data.name),
        views=views,
        pad=cfg.store.augment_pad,
        seed=cfg.seed,
        batch_size=cfg.store.batch_size,
        device=device,
    )


def teacher_targets(ctx_or_cfg: StageContext | Config, split: str) -> TeacherTargets:
    """Clean-view teacher embeddings `float32 [N, D]` and logits `float32 [N, C]` for the
    configured `split`, in `load_configured` order (N honours data.train_limit / test_limit)."""
    return store_entry(ctx_or_cfg, split).targets(0)
