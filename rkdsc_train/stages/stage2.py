"""Stage 2: train the CAT codec and head through the channel mix on a frozen (or slowly tuned)
student, with teacher targets from the feature store (PAPER.md §4–5, DESIGN.md §3).

Under torchrun every rank draws the same global order, trains its part of each global batch through
DDP (CAT, head and, when tuned, the student) and draws its own channel realisations from a
generator seeded by (seed, epoch, rank); in one process the single seeded generator drives both, as
before. A final partial batch smaller than the number of ranks is skipped under torchrun.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from rkdsc_core import distributed
from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import Normalisation, random_crop_flip, to_tensor
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.distill.robust import RobustDistiller
from rkdsc_core.errors import RkdscError
from rkdsc_core.provenance import provenance
from rkdsc_core.torch_utils import count_params, cpu_state
from rkdsc_train.artifacts import load_stage1_student
from rkdsc_train.context import StageContext
from rkdsc_train.loop import train_epoch
from rkdsc_train.targets import teacher_targets

log = logging.getLogger(__name__)


def cat_config(cfg, feature_dim: int) -> CATConfig:
    s = cfg.stage2
    return CATConfig(
        feature_dim=feature_dim,
        k_max=s.k_max,
        rates=tuple(s.rates),
        tokens=s.cat_tokens,
        d_model=s.cat_d_model,
        heads=s.cat_heads,
        enc_layers=s.cat_enc_layers,
        dec_layers=s.cat_dec_layers,
        enc_d_model=s.cat_enc_d_model,
        enc_ff_mult=s.cat_enc_ff_mult,
        enc_out=s.cat_enc_out,
    )


def init_from_bundle(cat: CATCodec, head: torch.nn.Module, bundle: str) -> None:
    """Load the CAT and head of `bundle` into `cat` and `head` (stage2.init_from)."""
    from rkdsc_core.runtime import load_bundle

    src = load_bundle(bundle)
    try:
        cat.load_state_dict(src.cat.state_dict())
        head.load_state_dict(src.head.state_dict())
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RkdscError(
            f"stage2.init_from {bundle}: its CAT/head do not fit the configured one ({first}); "
            "set stage2.cat_* to the bundle's CAT"
        ) from None
    log.info("stage 2 starts from the CAT and head of %s", src.path)


@torch.no_grad()
def student_features(student, images: np.ndarray, norm: Normalisation, device, bs=500):
    """float32 [N, D] clean student features (computed once: the student is frozen)."""
    out = []
    for i in tqdm(range(0, len(images), bs), desc="student features", leave=False):
        out.append(student(to_tensor(images[i : i + bs], norm).to(device))[0].cpu())
    return torch.cat(out)


@torch.no_grad()
def validate(distiller: RobustDistiller, feats, z_t, logits_t, labels, mix, seed: int) -> dict:
    """Accuracy on the held-out set for each channel at fixed SNRs and K=16 (or nearest)."""
    from rkdsc_core.channels import make_channel

    cat, head = distiller.cat, distiller.head
    dev = next(cat.parameters()).device  # the held-out tensors stay on the CPU between epochs
    feats, labels = feats.to(dev), labels.to(dev)
    k = min(cat.cfg.rates, key=lambda r: abs(r - 16))
    res = {}
    for name, snr in (("awgn", 0.0), ("awgn", -5.0), ("rayleigh", 5.0)):
        g = torch.Generator().manual_seed(seed)  # CPU draws, so the scores match across devices
        ch = make_channel(name)
        x = cat.encode(feats, k, None)
        out = ch(x[:, :k], torch.full((len(x),), snr, device=dev), generator=g)
        z = cat.decode_received(out.symbols, out.snr_eff_db)
        acc = (head(z).argmax(1) == labels).float().mean().item()
        res[f"{name}_{snr:g}dB_K{k}"] = acc
    return res


class FinetunePhase:
    """The optional low-SNR phase after the main epochs (`stage2.finetune_*`): a channel mix
    whose SNR range ends at `finetune_snr_max_db`, and a cosine-decayed learning rate from
    `finetune_lr` over its steps (the main phase's one-cycle schedule has ended by then)."""

    def __init__(self, s2, opt: torch.optim.Optimizer, steps_per_epoch: int) -> None:
        from rkdsc_core.channels import ChannelMix

        self.opt, self.lr = opt, s2.finetune_lr
        self.steps = max(1, s2.finetune_epochs * steps_per_epoch)
        ch = s2.channel
        if s2.finetune_epochs and not ch.snr_min_db <= s2.finetune_snr_max_db:
            raise RkdscError(
                f"stage2.finetune_snr_max_db ({s2.finetune_snr_max_db}) is below "
                f"stage2.channel.snr_min_db ({ch.snr_min_db})"
            )
        self.mix = ChannelMix.from_config(
            dataclasses.replace(ch, snr_max_db=max(ch.snr_min_db, s2.finetune_snr_max_db))
        )
        self.sched: torch.optim.lr_scheduler.LRScheduler | None = None
        self._pending: dict | None = None

    def start(self) -> torch.optim.lr_scheduler.LRScheduler:
        """The phase's scheduler (created at its first epoch, or restored from a checkpoint)."""
        if self.sched is None:
            for g in self.opt.param_groups:
                g["lr"] = g["initial_lr"] = self.lr
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, self.steps)
            if self._pending is not None:  # resumed inside the phase
                self.sched.load_state_dict(self._pending)
                for g, lr in zip(self.opt.param_groups, self.sched.get_last_lr()):
                    g["lr"] = lr
        return self.sched

    def state_dict(self) -> dict | None:
        return None if self.sched is None else self.sched.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        self._pending = state


class _TrainStep(torch.nn.Module):
    """One training forward as a single module (what DDP wraps): the student when it is tuned
    (images → features), then the robust distiller's losses."""

    def __init__(self, student: torch.nn.Module, distiller: RobustDistiller, tune: bool) -> None:
        super().__init__()
        self.student, self.distiller, self.tune = student, distiller, tune

    def forward(self, inputs, z_t, l_t, labels, generator) -> dict[str, torch.Tensor]:
        f = self.student(inputs)[0] if self.tune else inputs
        return self.distiller.forward_train(f, z_t, l_t, labels, generator)


def fit_then_val(labels: np.ndarray, cfg) -> tuple[np.ndarray, int]:
    """(order int64 [N], n_val): the training images, then stage 2's validation images (a
    class-balanced `stage2.val_limit` of the images stages teacher and 1 held out, seeded by
    `seed`). The baselines stage uses the same split."""
    fit, val = validation_split(labels, cfg.data.val_fraction, cfg.seed, limit=cfg.stage2.val_limit)
    return np.concatenate([fit, val]), len(val)


def run(ctx: StageContext) -> dict:
    from rkdsc_core.channels import ChannelMix

    cfg, s2, dev = ctx.cfg, ctx.cfg.stage2, ctx.device
    student, student_entry = load_stage1_student(ctx.run_dir)
    student = student.to(dev).eval()
    tune_student = s2.student_lr is not None
    for p in student.parameters():
        p.requires_grad_(tune_student)
    data = load_configured(cfg.data, "train")
    norm = Normalisation.for_dataset(cfg.data.name)
    targets = teacher_targets(ctx, "train")
    order, n_val = fit_then_val(data.labels, cfg)  # validation images last: tr, va are slices
    data = data.select(order)
    feats = student_features(student, data.images, norm, dev)
    z_t = torch.from_numpy(np.array(targets.embeddings[order], np.float32))
    l_t = torch.from_numpy(np.array(targets.logits[order], np.float32))
    labels = torch.from_numpy(data.labels)
    tr, va = slice(0, len(data) - n_val), slice(len(data) - n_val, len(data))

    cat = CATCodec(cat_config(cfg, feats.shape[1])).to(dev)
    head = torch.nn.Linear(feats.shape[1], len(data.classes)).to(dev)
    head.load_state_dict(student.head.state_dict())
    if s2.init_from:
        init_from_bundle(cat, head, s2.init_from)
    mix = ChannelMix.from_config(s2.channel)
    weights = KDWeights(s2.feature_weight, s2.kl_weight, s2.ce_weight, s2.temperature)
    distiller = RobustDistiller(cat, head, mix, weights, s2.tx_snr_unknown_prob).to(dev)
    params = list(cat.parameters()) + list(head.parameters())
    groups = [{"params": params, "lr": s2.lr}]
    if tune_student:
        groups.append({"params": list(student.parameters()), "lr": s2.student_lr})
        params = params + groups[1]["params"]
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    distributed.check_batch(s2.batch_size, "stage2.batch_size")
    step_module = distributed.wrap(  # a tuned student's own classifier is unused
        _TrainStep(student, distiller, tune_student), find_unused_parameters=tune_student
    )
    n_tr = tr.stop
    steps = max(1, s2.epochs * math.ceil(n_tr / s2.batch_size))
    max_lr = [g["lr"] for g in groups]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    ft = FinetunePhase(s2, opt, math.ceil(n_tr / s2.batch_size))
    start, history, best = 0, [], {"score": -1.0}
    state = ctx.load_checkpoint()
    if state is not None:
        cat.load_state_dict(state["cat"])
        head.load_state_dict(state["head"])
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start, history, best = state["epoch"] + 1, state["history"], state["best"]
        ft.load_state_dict(state.get("finetune"))
    for epoch in range(start, s2.epochs + s2.finetune_epochs):
        if epoch >= s2.epochs:  # the low-SNR phase: its own SNR range and learning rate
            distiller.mix, sched = ft.mix, ft.start()
        distiller.train()
        student.train(tune_student)
        order = torch.randperm(n_tr, generator=gen)  # the same global order on every rank
        step_gen = distributed.step_generator(gen, cfg.seed, epoch)
        total = s2.epochs + s2.finetune_epochs

        def step(idx, step_gen=step_gen, feats=feats):
            if tune_student:  # features through the student being tuned, light augmentation
                inputs = random_crop_flip(
                    to_tensor(data.images[idx.numpy()], norm), generator=step_gen
                ).to(dev)
            else:
                inputs = feats[idx].to(dev)
            return step_module(
                inputs, z_t[idx].to(dev), l_t[idx].to(dev), labels[idx].to(dev), step_gen
            )

        means = train_epoch(
            order, s2.batch_size, step, opt, sched, params, f"stage2 {epoch + 1}/{total}"
        )
        distributed.sync_buffers_(step_module)
        distiller.eval()
        student.eval()
        if tune_student:
            feats = student_features(student, data.images, norm, dev)
        val = validate(distiller, feats[va], z_t[va], l_t[va], labels[va], mix, cfg.seed)
        row = {"epoch": epoch, **means, "val": val}
        history.append(row)
        log.info("stage2 epoch %d: %s", epoch, row)
        score = float(np.mean(list(val.values())))
        if score > best["score"]:
            best = {"score": score, "epoch": epoch}
            if ctx.is_main:
                torch.save(
                    {
                        "cat": cat.state_dict(),
                        "head": head.state_dict(),
                        "student": student.state_dict(),
                    },
                    ctx.stage_dir / "best.pt",
                )
        ctx.save_checkpoint(
            {
                "cat": cat.state_dict(),
                "head": head.state_dict(),
                "student": student.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch,
                "history": history,
                "best": best,
                "finetune": ft.state_dict(),
            }
        )
    distributed.barrier()  # rank 0 has written best.pt
    best_state = torch.load(ctx.stage_dir / "best.pt", weights_only=True)
    cat.load_state_dict(best_state["cat"])
    head.load_state_dict(best_state["head"])
    student.load_state_dict(best_state["student"])
    from safetensors.torch import save_file

    metrics = {
        "student_tuned": tune_student,
        "student_spec": student_entry["spec"],
        "cat_spec": cat.cfg.to_dict(),
        "cat_params": count_params(cat),
        "head_params": count_params(head),
        "best": best,
        "history": history,
        "train_images": n_tr,
        "val_images": n_val,
        "provenance": provenance(config=None, seed=cfg.seed),
    }
    if not ctx.is_main:  # rank 0 writes the weights and metrics
        return metrics
    if tune_student:
        save_file(cpu_state(student), str(ctx.stage_dir / "student.safetensors"))
    save_file(cpu_state(cat), str(ctx.stage_dir / "cat.safetensors"))
    save_file(cpu_state(head), str(ctx.stage_dir / "head.safetensors"))
    ctx.write_json("metrics.json", metrics)
    return metrics
