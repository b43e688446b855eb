"""Training through the channel mix, as stage 2 and the learned baselines both do (PAPER.md §4–5):
the same split, optimiser and one-cycle schedule, the optional low-SNR phase (`stage2.finetune_*`),
the same validation points, one `rkdsc_core.training_loop.fit` under it all.

Under torchrun every rank draws the same global order, trains its part of each global batch through
DDP and draws its own channel realisations from a generator seeded by (seed, epoch, rank); in one
process the single seeded generator drives both. A final partial batch smaller than the number of
ranks is skipped under torchrun.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rkdsc_core import distributed
from rkdsc_core.channels import ChannelMix
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import Normalisation, to_tensor
from rkdsc_core.errors import RkdscError
from rkdsc_core.training_loop import (
    EarlyStopping,
    FitResult,
    GeneratorState,
    fit,
    global_batches,
    steps_per_epoch,
    train_epoch,
)
from rkdsc_train.context import StageContext
from rkdsc_train.targets import teacher_targets


@dataclass
class ChannelData:
    """Stage 2's training set in `fit_then_val` order: images uint8 [N, H, W, C], teacher
    embeddings `z_t` float32 [N, E] and logits `l_t` float32 [N, C], labels int64 [N]; images
    [0, n_train) train, the rest validate. `feats` float32 [N, D]: stage 2's student features."""

    images: np.ndarray
    norm: Normalisation
    z_t: torch.Tensor
    l_t: torch.Tensor
    labels: torch.Tensor
    n_train: int
    num_classes: int
    feats: torch.Tensor | None = None

    def x(self, idx: torch.Tensor) -> torch.Tensor:
        """Normalised images float32 [B, C, H, W] of indices `idx`."""
        return to_tensor(self.images[idx.numpy()], self.norm)


def load_channel_data(ctx: StageContext) -> ChannelData:
    """The training split with the feature store's teacher targets, validation images last."""
    cfg = ctx.cfg
    data = load_configured(cfg.data, "train")
    targets = teacher_targets(ctx, "train")
    order, n_val = fit_then_val(data.labels, cfg)
    data = data.select(order)
    return ChannelData(
        images=data.images,
        norm=Normalisation.for_dataset(cfg.data.name),
        z_t=torch.from_numpy(np.array(targets.embeddings[order], np.float32)),
        l_t=torch.from_numpy(np.array(targets.logits[order], np.float32)),
        labels=torch.from_numpy(data.labels.astype(np.int64)),
        n_train=len(data) - n_val,
        num_classes=len(data.classes),
    )


def fit_then_val(labels: np.ndarray, cfg) -> tuple[np.ndarray, int]:
    """(order int64 [N], n_val): the training images, then stage 2's validation images (a
    class-balanced `stage2.val_limit` of the images stages teacher and 1 held out, seeded by
    `seed`). The baselines stage uses the same split."""
    fit_, val = validation_split(
        labels, cfg.data.val_fraction, cfg.seed, limit=cfg.stage2.val_limit
    )
    return np.concatenate([fit_, val]), len(val)


class FinetunePhase:
    """The optional low-SNR phase after the main epochs (`stage2.finetune_*`): a channel mix
    whose SNR range ends at `finetune_snr_max_db`, and a cosine-decayed learning rate from
    `finetune_lr` over its steps (the main phase's one-cycle schedule has ended by then)."""

    def __init__(self, s2, opt: torch.optim.Optimizer, steps_per_epoch: int) -> None:
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


@dataclass
class ChannelTrainee:
    """What trains through the channel: `weights` (checkpointed, one file each at the end; the
    best epoch's come back), optimiser `groups`, `step` (a module: `forward(idx, generator)` →
    loss terms; DDP wraps it), `validate()` → scores at `VAL_POINTS`, `set_training(flag)`, the
    epochs of the main phase and `use_mix(mix)` to swap the training channel mix."""

    weights: dict[str, nn.Module]
    groups: list[dict]
    step: nn.Module
    validate: Callable[[], dict[str, float]]
    set_training: Callable[[bool], None]
    epochs: int
    use_mix: Callable[[ChannelMix], None]
    find_unused_parameters: bool = True
    after_epoch: Callable[[], None] = lambda: None  # e.g. recompute features of a tuned student


def fit_through_channel(
    ctx: StageContext, name: str, t: ChannelTrainee, n_train: int, batch_size: int, patience: int
) -> FitResult:
    """Train `t` on images [0, `n_train`) for its epochs plus stage 2's low-SNR phase; AdamW with
    a one-cycle schedule over the main phase, checkpoints in `ctx`, the best epoch restored."""
    cfg, s2 = ctx.cfg, ctx.cfg.stage2
    params = [p for g in t.groups for p in g["params"]]
    opt = torch.optim.AdamW(t.groups, weight_decay=1e-4)
    per_epoch = steps_per_epoch(n_train, batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, [g["lr"] for g in t.groups], total_steps=max(1, t.epochs * per_epoch), pct_start=0.1
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    ft = FinetunePhase(s2, opt, per_epoch)
    step_module = distributed.wrap(t.step, find_unused_parameters=t.find_unused_parameters)
    total = t.epochs + s2.finetune_epochs

    def run_epoch(epoch: int) -> dict:
        phase_sched = sched
        if epoch >= t.epochs:  # the low-SNR phase: its own SNR range and learning rate
            t.use_mix(ft.mix)
            phase_sched = ft.start()
        t.set_training(True)
        order = torch.randperm(n_train, generator=gen)  # the same global order on every rank
        step_gen = distributed.step_generator(gen, cfg.seed, epoch)
        means = train_epoch(
            global_batches(order, batch_size),
            lambda idx: step_module(idx, step_gen),
            opt,
            phase_sched,
            params,
            f"{name} {epoch + 1}/{total}",
        )
        distributed.sync_buffers_(step_module)
        t.set_training(False)
        t.after_epoch()
        return {**means, "val": t.validate()}

    return fit(
        name,
        total,
        run_epoch,
        t.weights,
        state={"opt": opt, "sched": sched, "gen": GeneratorState(gen), "finetune": ft},
        score=lambda row: float(np.mean(list(row["val"].values()))),
        checkpoints=ctx,
        early_stop=EarlyStopping(patience, until=t.epochs, key=f"{ctx.name}.early_stop_patience"),
    )
