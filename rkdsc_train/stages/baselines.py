"""Learned baselines of issue 11, trained the way stage 2 trains RKD-SC (PAPER.md, "The honest
comparison"): the same training images (minus stage 2's validation images), the same channel mix
and SNR range (and stage 2's optional low-SNR phase after the main epochs), the SNR hidden from
the encoder as often as in stage 2, at K = `baselines.rate`, best epoch picked on the same
validation points.

- `deepjscc-cnn`: a CNN encoder → K symbols → MLP classifier, end to end, cross-entropy only (no
  teacher, no CAT);
- `single-stage`: a fresh student of the same genotype and width + CAT + head trained at once
  through the channel with stage 2's loss (feature MSE to the teacher + KL + CE): RKD-SC without
  its first, channel-free stage;
- `teacher-over-channel`: the frozen teacher's embedding (from the feature store) → a fresh CAT +
  head with stage 2's loss: deep JSCC with the large model at the transmitter.

Each baseline has its own folder `<run>/baselines/<name>/` (checkpoint every epoch, `--resume`),
weights and metrics; the export stage copies them into the bundle, where `rkdsc eval --baselines`
finds them. The "no-cat" and digital baselines need no training.

Under torchrun each baseline trains like stage 2: the same global order on every rank, each rank's
part of a global batch through DDP, its own channel draws (`distributed.step_generator`); rank 0
writes.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from rkdsc_core import distributed
from rkdsc_core.channels import ChannelMix, make_channel
from rkdsc_core.codec.cat import CATCodec
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.transforms import Normalisation, to_tensor
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.distill.robust import RobustDistiller
from rkdsc_core.errors import RkdscError
from rkdsc_core.eval.learned_baselines import through_cat
from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn
from rkdsc_core.provenance import provenance
from rkdsc_core.torch_utils import count_params, cpu_state
from rkdsc_train.artifacts import load_stage1_student
from rkdsc_train.context import StageContext
from rkdsc_train.loop import train_epoch
from rkdsc_train.stages.stage2 import FinetunePhase, cat_config, fit_then_val
from rkdsc_train.targets import teacher_targets

log = logging.getLogger(__name__)

NAMES = ("deepjscc-cnn", "single-stage", "teacher-over-channel")
VAL_POINTS = (("awgn", 0.0), ("awgn", -5.0), ("rayleigh", 5.0))  # as stage 2's validation


@dataclass
class Trainee:
    """One baseline to train: its modules (saved one file each), how to rebuild them from the
    bundle registry, a training step and a predictor for validation."""

    modules: dict[str, nn.Module]
    specs: dict[str, tuple[str, dict]]  # component → (bundle builder, spec)
    step: Callable[[torch.Tensor, torch.Generator], dict[str, torch.Tensor]]
    predict: Callable[[torch.Tensor, nn.Module, torch.Tensor, torch.Generator], torch.Tensor]
    epochs: int
    use_mix: Callable[[ChannelMix], None]  # swap the training channel mix (low-SNR phase)


@dataclass
class Data:
    images: np.ndarray
    norm: Normalisation
    z_t: torch.Tensor
    l_t: torch.Tensor
    labels: torch.Tensor
    n_train: int  # images [0, n_train) train, the rest validate

    def x(self, idx: torch.Tensor) -> torch.Tensor:
        return to_tensor(self.images[idx.numpy()], self.norm)


def _cat_trainee(
    cfg, data: Data, feature_dim: int, num_classes: int, extra: dict, feat, epochs: int
) -> Trainee:
    """CAT + head (+ `extra` modules feeding `feat(idx)`) with stage 2's loss at K = rate."""
    rate = cfg.baselines.rate
    s2 = cfg.stage2
    cat_cfg = cat_config(cfg, feature_dim)
    cat_cfg = type(cat_cfg).from_dict({**cat_cfg.to_dict(), "rates": [rate]})
    cat = CATCodec(cat_cfg)
    head = nn.Linear(feature_dim, num_classes)
    weights = KDWeights(s2.feature_weight, s2.kl_weight, s2.ce_weight, s2.temperature)
    mix = ChannelMix.from_config(s2.channel)
    distiller = RobustDistiller(cat, head, mix, weights, s2.tx_snr_unknown_prob)

    def step(idx, gen):
        return distiller.forward_train(
            feat(idx), data.z_t[idx], data.l_t[idx], data.labels[idx], gen
        )

    def predict(idx, channel, snr, gen):
        return through_cat(cat, head, feat(idx), rate, channel, snr, gen)

    specs = {
        "cat": ("cat", cat_cfg.to_dict()),
        "head": ("head", {"in_features": feature_dim, "num_classes": num_classes}),
    }
    modules = {**extra, "cat": cat, "head": head}
    return Trainee(modules, specs, step, predict, epochs, lambda m: setattr(distiller, "mix", m))


def make_trainee(name: str, ctx: StageContext, data: Data, num_classes: int) -> Trainee:
    cfg, b = ctx.cfg, ctx.cfg.baselines
    if name == "deepjscc-cnn":
        spec = {
            "in_channels": int(data.images.shape[-1]),
            "rate": b.rate,
            "num_classes": num_classes,
            "width": b.deepjscc_width,
        }
        model = DeepJsccCnn(**spec)
        mix = {"train": ChannelMix.from_config(cfg.stage2.channel)}

        def step(idx, gen):
            out = mix["train"](model.encode(data.x(idx)), generator=gen)
            logits = model.decode(out.symbols)
            labels = data.labels[idx]
            loss = nn.functional.cross_entropy(logits, labels)
            return {"loss": loss, "acc": (logits.argmax(1) == labels).float().mean().detach()}

        def predict(idx, channel, snr, gen):
            return model.decode(channel(model.encode(data.x(idx)), snr, generator=gen).symbols)

        return Trainee(
            {"model": model},
            {"model": ("deepjscc_cnn", spec)},
            step,
            predict,
            b.deepjscc_epochs,
            lambda m: mix.update(train=m),
        )
    if name == "single-stage":
        _, entry = load_stage1_student(ctx.run_dir)  # only its spec: the weights start fresh
        from rkdsc_core.nas.student import student_from_spec

        student = student_from_spec(entry["spec"])
        t = _cat_trainee(
            cfg,
            data,
            entry["feature_dim"],
            num_classes,
            {"student": student},
            lambda idx: student(data.x(idx))[0],
            b.single_stage_epochs,
        )
        t.specs["student"] = ("student", entry["spec"])
        return t
    if name == "teacher-over-channel":
        d = int(data.z_t.shape[1])
        feat = data.z_t.__getitem__
        return _cat_trainee(cfg, data, d, num_classes, {}, feat, b.teacher_cat_epochs)
    raise RkdscError(f"unknown learned baseline '{name}' (choose from {', '.join(NAMES)})")


class _Step(nn.Module):
    """A trainee's training step as one module (what DDP wraps): `forward(idx, generator)`."""

    def __init__(self, t: Trainee) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(t.modules)
        self.step = t.step

    def forward(self, idx: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return self.step(idx, generator)


@torch.no_grad()
def validate(t: Trainee, idx: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    res = {}
    for channel, snr in VAL_POINTS:
        g = torch.Generator().manual_seed(seed)
        ch = make_channel(channel)
        logits = torch.cat(
            [
                t.predict(idx[i : i + 500], ch, torch.full((len(idx[i : i + 500]),), snr), g)
                for i in range(0, len(idx), 500)
            ]
        )
        res[f"{channel}_{snr:g}dB"] = float((logits.argmax(1) == labels).float().mean())
    return res


def train_one(ctx: StageContext, name: str, t: Trainee, data: Data) -> dict:
    """Train `t` for its epochs with per-epoch checkpoints; write weights and metrics.json."""
    b, seed = ctx.cfg.baselines, ctx.cfg.seed
    params = [p for m in t.modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=b.lr, weight_decay=1e-4)
    n_tr = data.n_train
    steps = max(1, t.epochs * math.ceil(n_tr / b.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, b.lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    val_idx = torch.arange(n_tr, len(data.labels))
    distributed.check_batch(b.batch_size, "baselines.batch_size")
    # single-stage trains a student whose own classifier is unused: let DDP skip such parameters
    step_module = distributed.wrap(_Step(t), find_unused_parameters=True)
    s2 = ctx.cfg.stage2  # stage 2's optional low-SNR phase applies to the baselines too
    ft = FinetunePhase(s2, opt, math.ceil(n_tr / b.batch_size))
    total = t.epochs + s2.finetune_epochs
    start, history, best, best_state, seconds = 0, [], {"score": -1.0}, None, 0.0
    state = ctx.load_checkpoint()
    if state is not None:
        for comp, m in t.modules.items():
            m.load_state_dict(state["modules"][comp])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start, history, best = state["epoch"] + 1, state["history"], state["best"]
        best_state, seconds = state["best_state"], state["seconds"]
        ft.load_state_dict(state.get("finetune"))
    for epoch in range(start, total):
        if epoch >= t.epochs:
            t.use_mix(ft.mix)
            sched = ft.start()
        t0 = time.time()
        for m in t.modules.values():
            m.train()
        order = torch.randperm(n_tr, generator=gen)  # the same global order on every rank
        step_gen = distributed.step_generator(gen, seed, epoch)
        means = train_epoch(
            order,
            b.batch_size,
            lambda idx, g=step_gen: step_module(idx, g),
            opt,
            sched,
            params,
            f"{name} {epoch + 1}/{total}",
        )
        distributed.sync_buffers_(step_module)
        for m in t.modules.values():
            m.eval()
        val = validate(t, val_idx, data.labels[val_idx], seed)
        seconds += time.time() - t0
        row = {"epoch": epoch, **means, "val": val}
        history.append(row)
        log.info("%s epoch %d: %s", name, epoch, row)
        score = float(np.mean(list(val.values())))
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            best_state = {c: copy.deepcopy(m.state_dict()) for c, m in t.modules.items()}
        ctx.save_checkpoint(
            {
                "modules": {c: m.state_dict() for c, m in t.modules.items()},
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch,
                "history": history,
                "best": best,
                "best_state": best_state,
                "seconds": seconds,
                "finetune": ft.state_dict(),
            }
        )
    components = {}
    for comp, m in t.modules.items():
        if best_state is not None:
            m.load_state_dict(best_state[comp])
        if ctx.is_main:  # rank 0 writes
            save_file(cpu_state(m), str(ctx.stage_dir / f"{comp}.safetensors"))
        builder, spec = t.specs[comp]
        components[comp] = {"builder": builder, "spec": spec, "params": count_params(m)}
    metrics = {
        "name": name,
        "rate": ctx.cfg.baselines.rate,
        "epochs": t.epochs,
        "finetune_epochs": ctx.cfg.stage2.finetune_epochs,
        "finetune_snr_max_db": ctx.cfg.stage2.finetune_snr_max_db,
        "batch_size": b.batch_size,
        "lr": b.lr,
        "train_images": n_tr,
        "val_images": len(val_idx),
        "train_seconds": round(seconds, 1),
        "params": sum(c["params"] for c in components.values()),
        "components": components,
        "best": best,
        "history": history,
        "train_channel_mix": ChannelMix.from_config(ctx.cfg.stage2.channel).as_dict(),
        "provenance": provenance(config=None, seed=seed),
    }
    ctx.write_json("metrics.json", metrics)
    return metrics


def load_data(ctx: StageContext) -> tuple[Data, int]:
    cfg = ctx.cfg
    data = load_configured(cfg.data, "train")
    targets = teacher_targets(ctx, "train")
    order, n_val = fit_then_val(data.labels, cfg)  # stage 2's split, validation images last
    data = data.select(order)
    out = Data(
        images=data.images,
        norm=Normalisation.for_dataset(cfg.data.name),
        z_t=torch.from_numpy(np.array(targets.embeddings[order], np.float32)),
        l_t=torch.from_numpy(np.array(targets.logits[order], np.float32)),
        labels=torch.from_numpy(data.labels.astype(np.int64)),
        n_train=len(data) - n_val,
    )
    return out, len(data.classes)


def run(ctx: StageContext) -> dict:
    names = list(ctx.cfg.baselines.names)
    for name in names:
        if name not in NAMES:
            raise RkdscError(f"baselines.names: unknown '{name}' (choose from {', '.join(NAMES)})")
    data, num_classes = load_data(ctx) if names else (None, 0)
    results = {}
    for name in names:
        sub = StageContext(ctx.cfg, f"{ctx.name}/{name}", resume=ctx.resume)
        done = sub.stage_dir / "metrics.json"
        if ctx.resume and done.exists():
            log.info("baseline %s: already trained (%s)", name, done)
            results[name] = json.loads(done.read_text())
            continue
        torch.manual_seed(ctx.cfg.seed)
        results[name] = train_one(sub, name, make_trainee(name, sub, data, num_classes), data)
    summary = {
        n: {k: r[k] for k in ("rate", "epochs", "params", "train_seconds", "best")}
        for n, r in results.items()
    }
    ctx.write_json("metrics.json", {"baselines": summary})
    return summary
