"""Read the outputs of earlier stages (teacher, stage 1, stage 2) from a run folder, with one-line
errors that name the stage to run when something is missing."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.errors import RkdscError
from rkdsc_core.torch_utils import count_params


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise RkdscError(
            f"{path} not found: run the '{stage}' stage first (rkdsc train --stage {stage})"
        )
    return path


def _metrics(run_dir: Path, stage: str) -> dict:
    return json.loads(_need(Path(run_dir) / stage / "metrics.json", stage).read_text())


def load_teacher(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """(teacher in eval mode, manifest entry {spec, params, clean_accuracy, ...})."""
    from rkdsc_core.models.teacher import load_teacher as _load

    run_dir = Path(run_dir)
    teacher = _load(_need(run_dir / "teacher" / "teacher.safetensors", "teacher"))
    m = _metrics(run_dir, "teacher")
    entry = {
        "spec": teacher.spec.to_dict(),
        "name": m.get("name"),
        "params": count_params(teacher),
        "clean_accuracy": m.get("test_accuracy"),
        "git_sha": m.get("provenance", {}).get("git_sha"),
    }
    return teacher, entry


def load_stage1_student(run_dir: str | Path) -> tuple[nn.Module, dict]:
    """(student from stage 1 in eval mode, manifest entry {spec, params, flops, accuracy})."""
    from rkdsc_core.nas.student import student_from_spec

    run_dir = Path(run_dir)
    m = _metrics(run_dir, "stage1")
    spec = m.get("student_spec")
    if spec is None:
        raise RkdscError(f"{run_dir}/stage1/metrics.json has no 'student_spec': rerun stage1")
    student = student_from_spec(spec)
    state = load_file(str(_need(run_dir / "stage1" / "student.safetensors", "stage1")))
    student.load_state_dict(state, strict=True)
    entry = {
        "spec": spec,
        "params": count_params(student),
        "feature_dim": int(spec["arch"]["feature_dim"]),
        "flops": m.get("flops"),
        "stage1_test_accuracy": m.get("test_accuracy"),
        "genotype": spec["genotype"],
    }
    return student.eval(), entry


def load_stage2(run_dir: str | Path, student: nn.Module) -> tuple[CATCodec, nn.Linear, nn.Module]:
    """(CAT codec, head, student — tuned in stage 2 when it was) from `<run>/stage2/`."""
    run_dir = Path(run_dir)
    m = _metrics(run_dir, "stage2")
    cat = CATCodec(CATConfig.from_dict(m["cat_spec"]))
    cat.load_state_dict(load_file(str(_need(run_dir / "stage2" / "cat.safetensors", "stage2"))))
    head_state = load_file(str(run_dir / "stage2" / "head.safetensors"))
    head = nn.Linear(head_state["weight"].shape[1], head_state["weight"].shape[0])
    head.load_state_dict(head_state)
    if m.get("student_tuned"):
        student.load_state_dict(load_file(str(run_dir / "stage2" / "student.safetensors")))
    return cat.eval(), head.eval(), student.eval()
