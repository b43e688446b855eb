"""Export: assemble the model bundle (DESIGN.md §4) from the stage outputs, measure its clean
accuracies (test split) and, on the validation images stage 2 held out, its rate table and the
IR stopping rule (issue 18), and optionally publish it as the default."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import shutil

from safetensors.torch import load_file

from rkdsc_core.bundle import default_bundle_path, save_bundle
from rkdsc_core.config import to_dict
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.eval.adaptive import RATE_ADAPTATION_DOC, calibrate_stop_rule, rate_table
from rkdsc_core.eval.harness import clean_accuracy
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params
from rkdsc_train.artifacts import load_stage1_student, load_stage2, load_teacher
from rkdsc_train.channel_fit import fit_then_val
from rkdsc_train.context import StageContext

log = logging.getLogger(__name__)


def build_manifest(ctx: StageContext, teacher_entry, student_entry, cat, head, classes, shape):
    cfg = ctx.cfg
    norm = Normalisation.for_dataset(cfg.data.name)
    return {
        "name": f"{cfg.name}-{cfg.data.name}",
        "dataset": {
            "name": cfg.data.name,
            "classes": list(classes),
            "image_size": [int(shape[0]), int(shape[1])],
            "channels": int(shape[2]),
            "mean": list(norm.mean),
            "std": list(norm.std),
        },
        "teacher": teacher_entry,
        "student": student_entry,
        "cat": {
            "spec": cat.cfg.to_dict(),
            "params": count_params(cat),
            "snr_range_db": [cfg.stage2.channel.snr_min_db, cfg.stage2.channel.snr_max_db],
        },
        "head": {
            "spec": {"in_features": head.in_features, "num_classes": head.out_features},
            "params": count_params(head),
        },
        "training": {"channel_mix": to_dict(cfg.stage2.channel)},
        "provenance": provenance(
            config=to_dict(cfg), seed=cfg.seed, exported=_dt.date.today().isoformat()
        ),
    }


def add_baselines(ctx: StageContext, manifest: dict, modules: dict) -> None:
    """Put the learned baselines the `baselines` stage trained (if it ran) into the bundle as
    components `baseline.<name>.<part>`, listed under `manifest["baselines"]`."""
    from rkdsc_core.bundle import BUILDERS

    root = ctx.run_dir / "baselines"
    names = [n for n in ctx.cfg.baselines.names if (root / n / "metrics.json").exists()]
    if not names:
        return
    manifest["baselines"] = {}
    for name in names:
        m = json.loads((root / name / "metrics.json").read_text())
        parts = {}
        for part, c in m["components"].items():
            key = f"baseline.{name}.{part}"
            module = BUILDERS[c["builder"]](c["spec"])
            module.load_state_dict(load_file(str(root / name / f"{part}.safetensors")))
            modules[key] = module.eval()
            manifest[key] = {"builder": c["builder"], "spec": c["spec"], "params": c["params"]}
            parts[part] = key
        keep = ("rate", "epochs", "batch_size", "train_images", "train_seconds", "params", "best")
        keep += ("finetune_epochs", "finetune_snr_max_db", "recipe")
        manifest["baselines"][name] = {
            "components": parts,
            **{k: m[k] for k in keep if k in m},
            "train_channel_mix": m["train_channel_mix"],
            "git_sha": m.get("provenance", {}).get("git_sha"),
        }
    log.info("bundle: learned baselines %s", ", ".join(names))


def publish(ctx: StageContext, out) -> None:
    """Copy the bundle to the package's default location, with the resolved config and each
    stage's metrics (training_log/<stage>.json) and the searched genotype beside it."""
    dst = default_bundle_path()
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(out, dst)
    src = ctx.run_dir / "config.yaml"
    if src.exists():
        shutil.copy(src, dst / "training_config.yaml")
    logs = dst / "training_log"
    logs.mkdir()
    for stage in ("teacher", "search", "stage1", "stage2", "baselines", "export"):
        if (ctx.run_dir / stage / "metrics.json").exists():
            shutil.copy(ctx.run_dir / stage / "metrics.json", logs / f"{stage}.json")
    for extra in ("genotype.yaml", "genotype.png"):
        if (ctx.run_dir / "search" / extra).exists():
            shutil.copy(ctx.run_dir / "search" / extra, logs / extra)
    log.info("published as the default bundle: %s", dst)


def run(ctx: StageContext) -> dict:
    cfg, ex = ctx.cfg, ctx.cfg.export
    teacher, teacher_entry = load_teacher(ctx.run_dir)
    student, student_entry = load_stage1_student(ctx.run_dir)
    cat, head, student = load_stage2(ctx.run_dir, student)
    test = load_configured(cfg.data, "test")
    manifest = build_manifest(
        ctx, teacher_entry, student_entry, cat, head, test.classes, test.images.shape[1:]
    )
    out = ctx.run_dir / "bundle"
    modules = {"teacher": teacher, "student": student, "cat": cat, "head": head}
    add_baselines(ctx, manifest, modules)
    save_bundle(out, manifest, modules)
    bundle = Bundle(out)
    metrics = {"n_test": len(test), **clean_accuracy(bundle, test)}
    train = load_configured(cfg.data, "train")
    order, n_val = fit_then_val(train.labels, cfg)  # the images stage 2 held out
    val = dataclasses.replace(
        train.select(order[len(order) - n_val :]).subset(ex.rate_table_n), split="validation"
    )
    snrs = [float(s) for s in ex.rate_table_snrs]
    manifest["rate_table"] = rate_table(bundle, val, ex.rate_table_channels, snrs, cfg.seed)
    manifest["ir_stop_rule"] = calibrate_stop_rule(bundle, val).to_dict()
    manifest["rate_adaptation"] = RATE_ADAPTATION_DOC
    table = manifest["rate_table"]
    manifest["metrics"] = metrics
    save_bundle(out, manifest, modules)
    log.info("bundle written to %s: %s", out, metrics)
    ctx.write_json("metrics.json", {"bundle": str(out), **metrics, "rate_table": table})
    if ex.publish_default:
        publish(ctx, out)
    return metrics
