"""Learned baselines of issue 11, trained the way stage 2 trains RKD-SC (PAPER.md, "The honest
comparison"): the same training images (minus stage 2's validation images), the same channel mix
and SNR range (and stage 2's optional low-SNR phase after the main epochs), the SNR hidden from
the encoder as often as in stage 2, at K = `baselines.rate`, best epoch picked on the same
validation points.

- `deepjscc-cnn`: a CNN encoder → K symbols → MLP classifier, end to end, cross-entropy only (no
  teacher, no CAT); on equal terms (issue 19) its decoder reads the per-symbol effective SNR as
  the CAT decoder does, and its images get the student's shift/flip augmentation;
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

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from safetensors.torch import save_file
from torch import nn

from rkdsc_core import distributed
from rkdsc_core.channels import ChannelMix
from rkdsc_core.codec.cat import CATCodec
from rkdsc_core.data.transforms import random_crop_flip
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.distill.robust import RobustDistiller
from rkdsc_core.errors import RkdscError
from rkdsc_core.eval.learned_baselines import through_cat
from rkdsc_core.eval.validation import score_points
from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn
from rkdsc_core.provenance import provenance
from rkdsc_core.torch_utils import count_params, cpu_state
from rkdsc_train.artifacts import load_stage1_student
from rkdsc_train.channel_fit import (
    ChannelData,
    ChannelTrainee,
    fit_through_channel,
    load_channel_data,
)
from rkdsc_train.context import StageContext
from rkdsc_train.stages.stage2 import cat_config

log = logging.getLogger(__name__)

NAMES = ("deepjscc-cnn", "single-stage", "teacher-over-channel")


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
    recipe: dict = dataclasses.field(
        default_factory=dict
    )  # what its metrics report it trained with


def _cat_trainee(
    cfg, data: ChannelData, feature_dim: int, num_classes: int, extra: dict, feat, epochs: int
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


def make_trainee(name: str, ctx: StageContext, data: ChannelData) -> Trainee:
    cfg, b, num_classes = ctx.cfg, ctx.cfg.baselines, data.num_classes
    if name == "deepjscc-cnn":
        spec = {
            "in_channels": int(data.images.shape[-1]),
            "rate": b.rate,
            "num_classes": num_classes,
            "width": b.deepjscc_width,
            "snr_input": b.deepjscc_snr_input,
        }
        model = DeepJsccCnn(**spec)
        mix = {"train": ChannelMix.from_config(cfg.stage2.channel)}
        pad = cfg.store.augment_pad  # the student's shift bound (its stored views)

        def step(idx, gen):
            x = data.x(idx)
            if b.deepjscc_augment:
                x = random_crop_flip(x, pad, generator=gen)
            out = mix["train"](model.encode(x), generator=gen)
            logits = model.decode(out.symbols, out.snr_eff_db)
            labels = data.labels[idx]
            loss = nn.functional.cross_entropy(logits, labels)
            return {"loss": loss, "acc": (logits.argmax(1) == labels).float().mean().detach()}

        def predict(idx, channel, snr, gen):
            out = channel(model.encode(data.x(idx)), snr, generator=gen)
            return model.decode(out.symbols, out.snr_eff_db)

        return Trainee(
            {"model": model},
            {"model": ("deepjscc_cnn", spec)},
            step,
            predict,
            b.deepjscc_epochs,
            lambda m: mix.update(train=m),
            {
                "decoder_snr_input": b.deepjscc_snr_input,
                "augment": f"shift ±{pad} px + h-flip" if b.deepjscc_augment else None,
            },
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


def validate(t: Trainee, idx: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    """Accuracy of the images `idx` at `VAL_POINTS`, in slices of 500."""

    def predict(channel, snr, gen):
        parts = [idx[i : i + 500] for i in range(0, len(idx), 500)]
        return torch.cat([t.predict(p, channel, torch.full((len(p),), snr), gen) for p in parts])

    return score_points(predict, labels, seed)


def train_one(ctx: StageContext, name: str, t: Trainee, data: ChannelData) -> dict:
    """Train `t` like stage 2 (per-epoch checkpoints, best epoch); write weights and metrics."""
    cfg, b = ctx.cfg, ctx.cfg.baselines
    val_idx = torch.arange(data.n_train, len(data.labels))
    distributed.check_batch(b.batch_size, "baselines.batch_size")

    def set_training(flag: bool) -> None:
        for m in t.modules.values():
            m.train(flag)

    trainee = ChannelTrainee(
        weights=t.modules,
        groups=[{"params": [p for m in t.modules.values() for p in m.parameters()], "lr": b.lr}],
        # single-stage trains a student whose own classifier is unused: DDP must skip it
        step=_Step(t),
        validate=lambda: validate(t, val_idx, data.labels[val_idx], cfg.seed),
        set_training=set_training,
        epochs=t.epochs,
        use_mix=t.use_mix,
    )
    res = fit_through_channel(ctx, name, trainee, data.n_train, b.batch_size, b.early_stop_patience)
    components = {}
    for comp, m in t.modules.items():
        if ctx.is_main:  # rank 0 writes
            save_file(cpu_state(m), str(ctx.stage_dir / f"{comp}.safetensors"))
        builder, spec = t.specs[comp]
        components[comp] = {"builder": builder, "spec": spec, "params": count_params(m)}
    metrics = {
        "name": name,
        "rate": b.rate,
        "epochs": t.epochs,
        "early_stop_patience": b.early_stop_patience,
        "stopped_at": res.stopped_at,
        "finetune_epochs": cfg.stage2.finetune_epochs,
        "finetune_snr_max_db": cfg.stage2.finetune_snr_max_db,
        "batch_size": b.batch_size,
        "lr": b.lr,
        "train_images": data.n_train,
        "val_images": len(val_idx),
        "train_seconds": round(sum(row["seconds"] for row in res.history), 1),
        "params": sum(c["params"] for c in components.values()),
        "components": components,
        "best": res.best,
        "history": res.history,
        "train_channel_mix": ChannelMix.from_config(cfg.stage2.channel).as_dict(),
        "recipe": t.recipe,
        "provenance": provenance(config=None, seed=cfg.seed),
    }
    ctx.write_json("metrics.json", metrics)
    return metrics


def grow_into(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `module`; a 2-D weight that gained input columns keeps the old ones
    first and zeros on the new (the layer computes what it did until trained)."""
    own = module.state_dict()
    if set(own) != set(state):
        raise RkdscError(
            f"baselines.init_from: parameters differ ({sorted(set(own) ^ set(state))})"
        )
    new = {}
    for key, old in state.items():
        want = own[key]
        if old.shape == want.shape:
            new[key] = old
        elif old.ndim == 2 and old.shape[0] == want.shape[0] and old.shape[1] < want.shape[1]:
            new[key] = torch.zeros_like(want)
            new[key][:, : old.shape[1]] = old
        else:
            raise RkdscError(
                f"baselines.init_from: {key} has shape {tuple(old.shape)}, "
                f"the configured one {tuple(want.shape)}"
            )
    module.load_state_dict(new)


def warm_start(t: Trainee, bundle_ref: str, name: str, rate: int) -> None:
    """Start trainee `t` from baseline `name` as trained in bundle `bundle_ref` (at `rate`)."""
    from rkdsc_core.eval.learned_baselines import trained_baseline
    from rkdsc_core.runtime import load_bundle

    found = trained_baseline(load_bundle(bundle_ref), name, rate)
    if found is None:
        raise RkdscError(f"baselines.init_from: {bundle_ref} has no {name} trained at K={rate}")
    modules, _ = found
    for comp, m in t.modules.items():
        grow_into(m, modules[comp].state_dict())
    t.recipe["init_from"] = {"bundle": bundle_ref, "git_sha": found[1].get("git_sha")}
    log.info("baseline %s starts from %s", name, bundle_ref)


def run(ctx: StageContext) -> dict:
    names = list(ctx.cfg.baselines.names)
    for name in names:
        if name not in NAMES:
            raise RkdscError(f"baselines.names: unknown '{name}' (choose from {', '.join(NAMES)})")
    data = load_channel_data(ctx) if names else None
    results = {}
    for name in names:
        sub = StageContext(ctx.cfg, f"{ctx.name}/{name}", resume=ctx.resume)
        done = sub.stage_dir / "metrics.json"
        if ctx.resume and done.exists():
            log.info("baseline %s: already trained (%s)", name, done)
            results[name] = json.loads(done.read_text())
            continue
        torch.manual_seed(ctx.cfg.seed)
        trainee = make_trainee(name, sub, data)
        if ctx.cfg.baselines.init_from:
            warm_start(trainee, ctx.cfg.baselines.init_from, name, ctx.cfg.baselines.rate)
        results[name] = train_one(sub, name, trainee, data)
    summary = {
        n: {k: r[k] for k in ("rate", "epochs", "params", "train_seconds", "best")}
        for n, r in results.items()
    }
    ctx.write_json("metrics.json", {"baselines": summary})
    return summary
