"""Stage "teacher": train or fine-tune the LSM teacher (PAPER.md §1) on the configured dataset.

AdamW with linear warm-up and a cosine decay per step, label smoothing, shift/flip augmentation;
a checkpoint every epoch (`--resume` continues from it). Model selection uses the last
`data.val_fraction` of the training split; the test split is only reported. Writes
`teacher.safetensors` (spec in its metadata) and `metrics.json` into the stage folder.

Under torchrun every rank draws the same global batch (and its augmentation) and trains on its
part through DDP; accuracies are counted on parts of the splits and summed across ranks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rkdsc_core import distributed
from rkdsc_core.config import Config, to_dict
from rkdsc_core.data.datasets import ImageArrays, load_configured
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import Normalisation, random_crop_flip, to_tensor
from rkdsc_core.errors import RkdscError
from rkdsc_core.models.teacher import PRESETS, Teacher, create_teacher, save_teacher
from rkdsc_core.provenance import provenance
from rkdsc_core.training_loop import EarlyStopping, FitResult, fit
from rkdsc_train.context import StageContext

log = logging.getLogger(__name__)

WEIGHTS_FILE = "teacher.safetensors"
_BAR_INTERVAL = 0.5 if sys.stderr.isatty() else 30.0  # seconds; keeps nohup logs short
METRICS_FILE = "metrics.json"


def _use_package(cfg: Config) -> bool:
    tc = cfg.teacher
    preset = PRESETS.get(tc.preset)
    return bool(
        tc.pretrained_package
        and preset is not None
        and preset.package_weights is not None
        and tc.pretrained_file is None
        and not tc.pretrained_hub
    )


def init_weights_source(cfg: Config) -> str:
    """Where the teacher's initial weights come from, for metrics and the bundle manifest."""
    tc = cfg.teacher
    if tc.pretrained_file:
        return f"file {tc.pretrained_file}"
    if tc.pretrained_hub:
        return "timm hub"
    if _use_package(cfg):
        from rkdsc_core.models.effnet_lite0_weights import LICENSE_NOTE

        return LICENSE_NOTE
    return "random"


def build_teacher(cfg: Config, num_classes: int) -> Teacher:
    """The configured teacher with its initial weights (file, hub, package or random)."""
    tc = cfg.teacher
    if init_weights_source(cfg) == "random":
        log.warning("teacher %s starts from random weights (no pretrained source)", tc.preset)
    return create_teacher(
        tc.preset,
        num_classes,
        Normalisation.for_dataset(cfg.data.name),
        img_size=tc.img_size,
        embed_dim=tc.embed_dim,
        pretrained_file=tc.pretrained_file,
        pretrained_hub=tc.pretrained_hub,
        pretrained_package=_use_package(cfg),
    )


@torch.no_grad()
def accuracy(
    teacher: Teacher,
    data: ImageArrays,
    norm: Normalisation,
    device: torch.device,
    idx: np.ndarray | None = None,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy of `teacher` on `data` (images `idx`, default all); restores train mode.
    Under torchrun each rank scores its part of `idx` and the counts are summed."""
    was_training = teacher.training
    teacher.eval()
    idx = np.arange(len(data)) if idx is None else idx
    total = len(idx)
    idx = distributed.part(idx)
    correct = 0
    bar = tqdm(
        range(0, len(idx), batch_size), desc="teacher eval", leave=False, mininterval=_BAR_INTERVAL
    )
    for start in bar:
        sl = idx[start : start + batch_size]
        logits = teacher.logits(to_tensor(data.images[sl], norm).to(device))
        correct += int((logits.argmax(1).cpu().numpy() == data.labels[sl]).sum())
    teacher.train(was_training)
    correct = distributed.all_reduce_sum({"correct": correct})["correct"]
    return correct / max(total, 1)


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _train_epoch(
    ctx, teacher, model, opt, data, norm, train_idx, epoch, step0, total, warmup
) -> dict:
    """One epoch; `model` is `teacher` or its DDP wrapper (the one to run forward through)."""
    tc, dev = ctx.cfg.teacher, ctx.device
    gen = torch.Generator().manual_seed(ctx.cfg.seed * 1_000 + epoch)
    order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
    steps = len(order) // tc.batch_size  # drop the last partial batch (BatchNorm)
    teacher.train()
    if tc.freeze_backbone:
        teacher.backbone.eval()
    loss_sum = correct = seen = 0.0
    bar = tqdm(
        range(steps),
        desc=f"teacher epoch {epoch + 1}/{tc.epochs}",
        mininterval=_BAR_INTERVAL,
    )
    for i in bar:
        sl = order[i * tc.batch_size : (i + 1) * tc.batch_size]
        x = to_tensor(data.images[sl], norm)
        if tc.augment:  # drawn for the global batch: the same draws under any world size
            x = random_crop_flip(x, pad=2, flip=True, generator=gen)
        y = torch.as_tensor(data.labels[sl])
        lo, hi = distributed.part_bounds(len(sl))  # this rank's part of the global batch
        x, y = x[lo:hi].to(dev), y[lo:hi].to(dev)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step0 + i, total, warmup, tc.lr)
        _, logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
        opt.zero_grad(set_to_none=True)
        (loss * distributed.loss_scale(hi - lo, len(sl))).backward()
        opt.step()
        loss_sum += float(loss.detach()) * (hi - lo)
        correct += int((logits.argmax(1) == y).sum())
        seen += hi - lo
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
    distributed.sync_buffers_(teacher)
    tot = distributed.all_reduce_sum({"loss": loss_sum, "correct": correct, "seen": seen})
    seen = max(tot["seen"], 1)
    return {"train_loss": tot["loss"] / seen, "train_accuracy": tot["correct"] / seen}


def run(ctx: StageContext) -> dict:
    cfg, tc = ctx.cfg, ctx.cfg.teacher
    data = load_configured(cfg.data, "train")
    test = load_configured(cfg.data, "test")
    norm = Normalisation.for_dataset(cfg.data.name)
    train_idx, val_idx = validation_split(data.labels, cfg.data.val_fraction, cfg.seed)
    n_val = len(val_idx)
    if tc.early_stop_patience and not n_val:
        raise RkdscError(
            "teacher.early_stop_patience needs held-out images (data.val_fraction > 0)"
        )

    teacher = build_teacher(cfg, len(data.classes)).to(ctx.device)
    if tc.freeze_backbone:
        teacher.backbone.requires_grad_(False)
    params = [p for p in teacher.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    steps = len(train_idx) // tc.batch_size
    if steps == 0:
        raise RkdscError(
            f"teacher.batch_size={tc.batch_size} exceeds the {len(train_idx)} training images"
        )
    distributed.check_batch(tc.batch_size, "teacher.batch_size")
    total, warmup = steps * tc.epochs, max(1, int(tc.warmup_epochs * steps))
    model = distributed.wrap(teacher)
    spec_json = json.dumps(teacher.spec.to_dict(), sort_keys=True)  # a resumed run must match it

    def run_epoch(epoch: int) -> dict:
        row = _train_epoch(
            ctx, teacher, model, opt, data, norm, train_idx, epoch, epoch * steps, total, warmup
        )
        row["val_accuracy"] = accuracy(teacher, data, norm, ctx.device, val_idx) if n_val else None
        row["test_accuracy"] = accuracy(teacher, test, norm, ctx.device)  # reported, not selected
        return row

    res = fit(
        "teacher",
        tc.epochs,
        run_epoch,
        {"model": teacher},
        state={"optimizer": opt},
        score=(lambda row: row["val_accuracy"]) if n_val else (lambda row: row["epoch"]),
        checkpoints=ctx,
        early_stop=EarlyStopping(tc.early_stop_patience, key="teacher.early_stop_patience"),
        ties_to_later=True,
        first_epoch=1,
        meta={"teacher spec (preset, size, classes)": spec_json},
    )
    return _finish(ctx, teacher, test, norm, res, n_val)


def _finish(ctx, teacher, test, norm, res: FitResult, n_val) -> dict:
    cfg, history, best = ctx.cfg, res.history, res.best
    teacher.eval()
    test_acc = accuracy(teacher, test, norm, ctx.device)
    if not ctx.is_main:  # rank 0 writes the weights and metrics
        return {"test_accuracy": test_acc, "best_epoch": best["epoch"]}
    prov = provenance(to_dict(cfg), cfg.seed)
    path = save_teacher(
        teacher.cpu(),
        ctx.stage_dir / WEIGHTS_FILE,
        metadata={
            "git_sha": prov["git_sha"],
            "test_accuracy": f"{test_acc:.4f}",
            "preset": cfg.teacher.preset,
        },
    )
    secs = [r["seconds"] for r in history]
    metrics = {
        "preset": cfg.teacher.preset,
        "arch": teacher.spec.arch,
        "params": teacher.num_params(),
        "input_size": [teacher.spec.in_chans, teacher.spec.img_size, teacher.spec.img_size],
        "embed_dim": teacher.spec.embed_dim,
        "dataset": cfg.data.name,
        "test_accuracy": test_acc,
        "test_n": len(test),
        "val_accuracy": best["score"] if n_val else None,
        "val_n": n_val,
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "stopped_at": res.stopped_at,
        "seconds_per_epoch": sum(secs) / len(secs) if secs else None,
        "device": str(ctx.device),
        "torch_threads": torch.get_num_threads(),
        "weights_file": str(path),
        "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "init_weights": init_weights_source(cfg),
        "git_sha": prov["git_sha"],
        "spec": teacher.spec.to_dict(),
        "history": history,
        "provenance": prov,
    }
    ctx.write_json(METRICS_FILE, metrics)
    ctx.done_marker().write_text("ok\n")
    log.info(
        "teacher: test accuracy %.4f on %d images (%d params) -> %s",
        test_acc,
        len(test),
        metrics["params"],
        path,
    )
    return {k: metrics[k] for k in ("test_accuracy", "params", "best_epoch", "weights_file")}
