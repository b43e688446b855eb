"""Test helpers: a tiny, randomly initialised but complete model bundle built in about a second.

Used by unit tests and GNU Radio block tests that need a real bundle on disk; never shipped as a
model (its accuracy is chance level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from rkdsc_core.adapt import StopRule
from rkdsc_core.bundle import save_bundle
from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.data.datasets import FMNIST_CLASSES
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.student import build_student, student_spec
from rkdsc_core.torch_utils import count_params

TINY_GENOTYPE = Genotype(
    primitives=("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"),
    normal=((("sep_conv_3x3", 0), ("skip_connect", 1)), (("sep_conv_3x3", 1), ("skip_connect", 2))),
    normal_concat=(2, 3),
    reduce=((("max_pool_3x3", 0), ("sep_conv_3x3", 1)), (("skip_connect", 2), ("max_pool_3x3", 1))),
    reduce_concat=(2, 3),
)


def make_tiny_bundle(
    path: str | Path,
    feature_dim: int = 32,
    rates: tuple[int, ...] = (4, 8, 16),
    seed: int = 0,
    with_teacher: bool = False,
    dataset: dict | None = None,
    stop_gain: float = 0.5,
) -> Path:
    """Write a tiny bundle to `path`; returns it. Fashion-MNIST-shaped (28×28×1, 10 classes)
    unless `dataset` gives another manifest dataset spec (name, classes, image_size, channels,
    mean, std). `with_teacher` adds a tiny random timm teacher (for `rkdsc eval`). Its IR
    stopping rule expects the gain `stop_gain` from K_max for every decision, so a receiver with
    confidence above 1 − stop_gain always asks for more and one at or below it never does."""
    torch.manual_seed(seed)
    norm = Normalisation.for_dataset("fmnist")
    dataset = dataset or {
        "name": "fmnist",
        "classes": list(FMNIST_CLASSES),
        "image_size": [28, 28],
        "channels": 1,
        "mean": list(norm.mean),
        "std": list(norm.std),
    }
    classes = len(dataset["classes"])
    arch = dict(
        in_channels=int(dataset["channels"]),
        num_classes=classes,
        feature_dim=feature_dim,
        init_channels=4,
        layers=3,
    )
    student = build_student(TINY_GENOTYPE, **arch)
    cat = CATCodec(
        CATConfig(
            feature_dim=feature_dim,
            k_max=max(rates),
            rates=rates,
            tokens=4,
            d_model=16,
            heads=2,
            enc_layers=1,
            dec_layers=1,
        )
    )
    head = nn.Linear(feature_dim, classes)
    manifest = {
        "name": "tiny-test",
        "dataset": dataset,
        "student": {"spec": student_spec(TINY_GENOTYPE, **arch), "params": count_params(student)},
        "cat": {
            "spec": cat.cfg.to_dict(),
            "params": count_params(cat),
            "snr_range_db": [-10.0, 20.0],
        },
        "head": {
            "spec": {"in_features": feature_dim, "num_classes": classes},
            "params": count_params(head),
        },
        "rate_table": {
            "awgn": {
                "snr_db": [-5.0, 5.0],
                "rates": list(rates),
                "clean_accuracy": 0.5,
                "accuracy": [[0.1 + 0.1 * i, 0.3 + 0.05 * i] for i in range(len(rates))],
            }
        },
    }
    rule = StopRule((min(rates),), (0.0,), (0.5,), np.full((1, 2, 2), stop_gain), max(rates))
    manifest["ir_stop_rule"] = rule.to_dict()
    modules = {"student": student, "cat": cat, "head": head}
    if with_teacher:  # timm's tiny test network (random weights, ~0.1 M parameters)
        from rkdsc_core.models.teacher import create_teacher

        ds_norm = Normalisation(tuple(dataset["mean"]), tuple(dataset["std"]))
        size = int(dataset["image_size"][0])
        teacher = create_teacher("test_efficientnet", classes, ds_norm, img_size=size)
        manifest["teacher"] = {"spec": teacher.spec.to_dict(), "params": count_params(teacher)}
        modules["teacher"] = teacher
    return save_bundle(path, manifest, modules)


def make_imagefolder_tree(
    root: Path, classes=("ant", "bee", "cat", "dog"), per_split=None, size: int = 20
) -> Path:
    """DIR/{train,test}/<class>/NNN.png, `size`×`size` RGB, class c brighter by 60·c: files sort
    by class, as every ImageFolder export does. `per_split`: images per class per split
    (default train 10, test 6)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (per_split or {"train": 10, "test": 6}).items():
        for c, name in enumerate(classes):
            folder = Path(root) / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                px = rng.integers(0, 60, (size, size, 3)) + 60 * c
                Image.fromarray(px.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return Path(root)


def imagefolder_spec(classes=("ant", "bee", "cat", "dog"), size: int = 16) -> dict:
    """A bundle manifest's dataset spec for `make_imagefolder_tree`'s images at `size` px."""
    return {
        "name": "imagefolder",
        "classes": list(classes),
        "image_size": [size, size],
        "channels": 3,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
