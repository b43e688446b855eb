"""Stage "stage1": train the derived student from scratch by clean KD (PAPER.md §4, stage 1).

The student is built from the searched genotype (`<out_dir>/search/genotype.yaml`, or
`stage1.genotype`); loss = feature MSE + KL(T) + β·CE against the stored teacher targets. AdamW
with linear warm-up and cosine decay per step; a checkpoint every epoch (`--resume`). The last
`data.val_fraction` of the training split is held out and scored each epoch; the full test split
is scored at the end. Writes `student.safetensors`, `genotype.yaml` and `metrics.json` into
`<out_dir>/stage1/`. Under torchrun the student trains through DDP on each rank's part of the
global batches; losses and scores are reduced over all ranks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from rkdsc_core import distributed
from rkdsc_core.config import Config, to_dict
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.distill.batches import KDData, StoredViews, evaluate, iterate, num_batches, progress
from rkdsc_core.distill.distiller import Distiller
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.errors import RkdscError
from rkdsc_core.nas.cost import count_flops
from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.student import student_from_spec, student_spec
from rkdsc_core.provenance import provenance
from rkdsc_core.torch_utils import count_params, cpu_state
from rkdsc_core.training_loop import fit
from rkdsc_train.context import StageContext
from rkdsc_train.stages.search import GENOTYPE_FILE, configure_cpu, load_train_data, student_arch

log = logging.getLogger(__name__)

WEIGHTS_FILE = "student.safetensors"


def load_test_data(cfg: Config, ctx: StageContext) -> KDData:
    """The test split (`data.test_limit` of it: a class-balanced subset) with its stored
    teacher targets."""
    from rkdsc_train.targets import teacher_targets

    arrays = load_configured(cfg.data, "test")
    targets = teacher_targets(ctx, "test").take(len(arrays))
    return KDData(arrays, targets, Normalisation.for_dataset(cfg.data.name))


def load_genotype(cfg: Config) -> Genotype:
    path = Path(cfg.stage1.genotype or Path(cfg.out_dir) / "search" / GENOTYPE_FILE)
    if not path.exists():
        raise RkdscError(
            f"{path} not found: run the 'search' stage first "
            "(rkdsc train --stage search) or set stage1.genotype=FILE"
        )
    return Genotype.load(path)


def teacher_reference(run_dir: Path) -> dict:
    """Teacher `test_accuracy` and `params` from `<run_dir>/teacher/metrics.json` (or empty)."""
    path = run_dir / "teacher" / "metrics.json"
    if not path.exists():
        return {}
    m = json.loads(path.read_text())
    return {k: m[k] for k in ("test_accuracy", "params") if k in m}


def with_views(ctx_or_cfg, data: KDData) -> KDData:
    """`data` with the feature store's augmented training views attached (`stage1.augment`)."""
    from rkdsc_train.targets import store_entry

    entry = store_entry(ctx_or_cfg, "train")
    if entry.num_views < 2:
        raise RkdscError(
            "stage1.augment=true needs augmented views in the feature store: set "
            "store.augmented_views=N (N >= 1), or stage1.augment=false"
        )
    n = len(data)
    views = StoredViews(entry.embeddings[:, :n], entry.logits[:, :n], entry.views[:, :n], entry.pad)
    return dataclasses.replace(data, views=views)


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    configure_cpu(cfg.stage1.num_threads)
    train = load_train_data(cfg, ctx)
    if cfg.stage1.augment:
        train = with_views(ctx, train)
    spec = student_spec(load_genotype(cfg), **student_arch(cfg, train))
    return train_student(ctx, spec, train, load_test_data(cfg, ctx), teacher_reference(ctx.run_dir))


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_student(
    ctx: StageContext, spec: dict, train: KDData, test: KDData, teacher: dict | None = None
) -> dict:
    """Stage-1 KD of the student described by `spec`; returns (and writes) its metrics."""
    cfg, s1 = ctx.cfg, ctx.cfg.stage1
    if s1.augment and train.views is None:
        raise RkdscError("stage1.augment=true but the training data carry no stored views")
    fit_idx, val_idx = validation_split(train.arrays.labels, cfg.data.val_fraction, cfg.seed)
    n_val = len(val_idx)
    student = student_from_spec(spec).to(ctx.device)
    if ctx.device.type == "cpu":
        student = student.to(memory_format=torch.channels_last)
    if hasattr(student, "set_drop_path"):
        student.set_drop_path(s1.drop_path)
    distributed.check_batch(s1.batch_size, "stage1.batch_size")
    distiller = Distiller(
        distributed.wrap(student),  # forward through DDP; checkpoints hold `student` itself
        KDWeights(s1.feature_weight, s1.kl_weight, s1.ce_weight, s1.temperature),
    )
    steps = num_batches(len(fit_idx), s1.batch_size, drop_last=True)
    opt = torch.optim.AdamW(student.parameters(), lr=s1.lr, weight_decay=s1.weight_decay)
    warmup = int(s1.warmup_epochs * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: lr_lambda(k, warmup, s1.epochs * steps)
    )

    def run_epoch(epoch: int) -> dict:
        rng = np.random.default_rng([cfg.seed, 1, epoch])
        losses = _epoch(
            distiller,
            opt,
            sched,
            iterate(train, fit_idx, s1.batch_size, rng, True, s1.augment, sharded=True),
            steps,
            f"stage1 {epoch + 1}/{s1.epochs}",
            s1.grad_clip,
            ctx.device,
        )
        distributed.sync_buffers_(student)  # BatchNorm statistics as rank 0 has them
        val = evaluate(student, train, val_idx, device=ctx.device, sharded=True) if n_val else {}
        return {**losses, **{f"val_{k}": v for k, v in val.items()}}

    # the recipe keeps the last epoch (cosine decay to 0): no best-epoch selection here
    res = fit(
        "stage1",
        s1.epochs,
        run_epoch,
        {"student": student},
        state={"optimizer": opt, "scheduler": sched},
        checkpoints=ctx,
    )
    return finish(ctx, student, spec, train, test, res.history, teacher or {})


def _epoch(
    distiller: Distiller,
    opt: torch.optim.Optimizer,
    sched,
    batches,
    steps: int,
    desc: str,
    grad_clip: float,
    device: torch.device,
) -> dict[str, float]:
    distiller.train()
    sums: dict[str, float] = {}  # terms weighted by the samples of each (part of a) batch
    n = 0
    with progress(steps, desc) as bar:
        for batch in batches:
            terms = distiller.forward_train(batch.to(device))
            opt.zero_grad(set_to_none=True)
            (terms["loss"] * batch.loss_scale).backward()
            torch.nn.utils.clip_grad_norm_(distiller.student.parameters(), grad_clip)
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch.y)
            n += len(batch.y)
            bar.set_postfix(loss=f"{float(terms['loss'].detach()):.3f}", refresh=False)
            bar.update(1)
    sums = distributed.all_reduce_sum({**sums, "#": n})
    n = sums.pop("#")
    return {k: v / max(n, 1) for k, v in sums.items()}


def finish(
    ctx: StageContext,
    student: torch.nn.Module,
    spec: dict,
    train: KDData,
    test: KDData,
    history: list,
    teacher: dict,
) -> dict:
    """Score on the test split; write weights, genotype and metrics; returns the metrics."""
    out = ctx.stage_dir
    score = evaluate(student, test, device=ctx.device, sharded=True)
    shape = (1, *np.asarray(train.arrays.images.shape)[[3, 1, 2]].tolist())
    student = student.cpu()
    metrics = {
        "test_accuracy": score["accuracy"],
        "test_n": score["n"],
        "test_feature_mse": score.get("feature_mse"),
        "test_teacher_agreement": score.get("teacher_agreement"),
        "params": count_params(student),
        "flops": count_flops(student, tuple(shape)),
        "student_spec": spec,
        "train_seconds": sum(row["seconds"] for row in history),
        "history": history,
    }
    if teacher.get("test_accuracy"):
        metrics["teacher_test_accuracy"] = teacher["test_accuracy"]
        metrics["accuracy_ratio"] = score["accuracy"] / teacher["test_accuracy"]
    if teacher.get("params"):
        metrics["teacher_params"] = teacher["params"]
        metrics["param_ratio"] = metrics["params"] / teacher["params"]
    metrics["provenance"] = provenance(to_dict(ctx.cfg), ctx.cfg.seed)
    if not ctx.is_main:  # rank 0 writes the weights and metrics
        return metrics
    meta = {"student_spec": json.dumps(spec)}
    save_file(cpu_state(student), str(out / WEIGHTS_FILE), metadata=meta)
    if "genotype" in spec:
        Genotype.from_dict(spec["genotype"]).save(out / GENOTYPE_FILE)
    ctx.write_json("metrics.json", metrics)
    log.info(
        "stage1: test accuracy %.4f (%d images), %d params, %d FLOPs",
        score["accuracy"],
        score["n"],
        metrics["params"],
        metrics["flops"],
    )
    return metrics
