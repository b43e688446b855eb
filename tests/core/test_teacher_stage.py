"""Stage "teacher" on a tiny timm model: checkpoint every epoch, `--resume`, metrics JSON and a
weights file that `load_teacher` reads back with the reported accuracy."""

import json

import pytest
import torch

from rkdsc_core.config import load_config
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.errors import RkdscError
from rkdsc_core.models.teacher import load_teacher
from rkdsc_train.pipeline import run_pipeline
from rkdsc_train.stages.teacher import accuracy


def _cfg(tmp_path, **teacher):
    f = tmp_path / "c.yaml"
    t = {
        "preset": "test_efficientnet",
        "img_size": 32,
        "epochs": 1,
        "batch_size": 32,
        "lr": 0.003,
        **teacher,
    }
    f.write_text(
        f"out_dir: {tmp_path / 'run'}\n"
        "data: {name: fmnist_subset, train_limit: 160, test_limit: 64, val_fraction: 0.2}\n"
        f"teacher: {json.dumps(t)}\n"
    )
    return f


def test_teacher_stage_trains_checkpoints_and_resumes(tmp_path):
    cfg_file = _cfg(tmp_path)
    first = run_pipeline(cfg_file, [], stages=["teacher"])["teacher"]
    stage = tmp_path / "run" / "teacher"
    metrics = json.loads((stage / "metrics.json").read_text())
    assert (stage / "checkpoint.pt").is_file() and (stage / "DONE").is_file()
    assert metrics["epochs"] == 1 and metrics["test_n"] == 64 and metrics["val_n"] == 32
    assert metrics["params"] == first["params"] > 0
    assert metrics["provenance"]["git_sha"] and metrics["spec"]["arch"] == "test_efficientnet"
    assert metrics["history"][0]["seconds"] > 0

    teacher = load_teacher(stage / "teacher.safetensors")
    test = load_dataset("fmnist_subset", "test", limit=64)
    acc = accuracy(teacher, test, Normalisation.for_dataset("fmnist_subset"), torch.device("cpu"))
    assert acc == pytest.approx(metrics["test_accuracy"])

    more = run_pipeline(cfg_file, ["teacher.epochs=2"], stages=["teacher"], resume=True)
    metrics = json.loads((stage / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]  # epoch 1 kept, only 2 trained
    assert more["teacher"]["best_epoch"] in (1, 2)

    with pytest.raises(RkdscError, match="different teacher spec"):
        run_pipeline(
            cfg_file, ["teacher.epochs=2", "teacher.img_size=40"], stages=["teacher"], resume=True
        )


def test_teacher_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(RkdscError, match="teacher.nope"):
        load_config(_cfg(tmp_path), ["teacher.nope=1"])
