"""Export: assemble the model bundle (DESIGN.md §4) from the stage outputs, measure its clean
accuracies and its rate table through the runtime, and optionally publish it as the default."""

from __future__ import annotations

import datetime as _dt
import logging
import shutil

from rkdsc_core.bundle import count_params, default_bundle_path, save_bundle
from rkdsc_core.config import to_dict
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.eval.harness import accuracy_through_channel, clean_accuracy, encode_all
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import Bundle
from rkdsc_train.artifacts import load_stage1_student, load_stage2, load_teacher
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


def run(ctx: StageContext) -> dict:
    cfg, ex = ctx.cfg, ctx.cfg.export
    teacher, teacher_entry = load_teacher(ctx.run_dir)
    student, student_entry = load_stage1_student(ctx.run_dir)
    cat, head, student = load_stage2(ctx.run_dir, student)
    test = load_dataset(cfg.data.name, "test", cfg.data.root, limit=cfg.data.test_limit)
    manifest = build_manifest(
        ctx, teacher_entry, student_entry, cat, head, test.classes, test.images.shape[1:]
    )
    out = ctx.run_dir / "bundle"
    modules = {"teacher": teacher, "student": student, "cat": cat, "head": head}
    save_bundle(out, manifest, modules)
    bundle = Bundle(out)
    metrics = {"n_test": len(test), **clean_accuracy(bundle, test)}
    table_data = test.take(ex.rate_table_n)
    table = {}
    symbols = {k: encode_all(bundle, table_data.images, k) for k in cat.cfg.rates}
    for ch in ex.rate_table_channels:
        table[ch] = {
            "snr_db": [float(s) for s in ex.rate_table_snrs],
            "rates": list(cat.cfg.rates),
            "accuracy": [
                [
                    accuracy_through_channel(bundle, symbols[k], table_data.labels, ch, s, cfg.seed)
                    for s in ex.rate_table_snrs
                ]
                for k in cat.cfg.rates
            ],
            "clean_accuracy": metrics["clean_accuracy"],
            "n": len(table_data),
        }
    manifest["metrics"] = metrics
    manifest["rate_table"] = table
    save_bundle(out, manifest, modules)
    log.info("bundle written to %s: %s", out, metrics)
    if ex.publish_default:
        dst = default_bundle_path()
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(out, dst)
        for extra in ("config.yaml",):
            src = ctx.run_dir / extra
            if src.exists():
                shutil.copy(src, dst / f"training_{extra}")
        log.info("published as the default bundle: %s", dst)
    ctx.write_json("metrics.json", {"bundle": str(out), **metrics, "rate_table": table})
    return metrics
