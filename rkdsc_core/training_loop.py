"""The one training loop: `fit` owns the epochs, a checkpoint after each (`--resume` continues to
the result an uninterrupted run gives), the best epoch on validation with optional early stopping,
and the per-epoch log line; `train_epoch` is the DDP-aware inner epoch with its progress bar.
Every stage of `rkdsc_train` and the learned baselines of `rkdsc_core.eval` train through them."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from rkdsc_core import distributed
from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2  # the layout `fit` writes; a checkpoint of another layout is refused


class Checkpoints(Protocol):
    """Where `fit` keeps its checkpoint (`rkdsc_train.context.StageContext` is one): `save` writes
    on rank 0 only, `load` returns the last one when resuming, else None."""

    def save_checkpoint(self, state: dict[str, Any]) -> None: ...

    def load_checkpoint(self) -> dict[str, Any] | None: ...


class GeneratorState:
    """A torch.Generator as something with `state_dict()` / `load_state_dict()`."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def state_dict(self) -> torch.Tensor:
        return self.gen.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop after `patience` epochs without a better validation score (0: off, the default; the
    epoch count is then the cap). Only epochs before `until` stop early: training then jumps to
    epoch `until` (the start of a later phase, e.g. stage 2's low-SNR phase, which runs in full)."""

    patience: int = 0
    until: int | None = None
    key: str = "patience"  # the config key that set `patience`, for the error message

    def __post_init__(self) -> None:
        if not isinstance(self.patience, int) or self.patience < 0:
            raise RkdscError(f"{self.key} must be an integer >= 0 (0: off), got {self.patience}")


@dataclass
class FitResult:
    """What `fit` returns: every epoch's row, the best epoch `{"epoch", "score"}` (empty without
    a score) and the epoch whose row ended training early (None when it ran to the end)."""

    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    stopped_at: int | None = None


@dataclass
class _Progress:
    """The loop's own bookkeeping, checkpointed with the weights."""

    epoch: int = 0  # epochs done (or skipped by early stopping)
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    best_weights: dict | None = None  # {name: state dict on the CPU} of the best epoch
    stale: int = 0  # epochs since the best one
    stopped_at: int | None = None

    def record(self, row: dict, score: float, weights, ties_to_later: bool, keep: bool) -> None:
        best = self.best.get("score")
        if best is None or score > best or (ties_to_later and score == best):
            self.best, self.stale = {"epoch": row["epoch"], "score": score}, 0
            self.best_weights = _cpu_copy(weights) if keep else None
        else:
            self.stale += 1


def _cpu_copy(weights: Mapping[str, nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    return {
        k: {n: t.detach().to("cpu", copy=True) for n, t in m.state_dict().items()}
        for k, m in weights.items()
    }


def fit(
    name: str,
    epochs: int,
    run_epoch: Callable[[int], dict],
    weights: Mapping[str, nn.Module],
    *,
    state: Mapping[str, Any] | None = None,
    score: Callable[[dict], float] | None = None,
    checkpoints: Checkpoints | None = None,
    early_stop: EarlyStopping = EarlyStopping(),
    restore_best: bool = True,
    ties_to_later: bool = False,
    first_epoch: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train epochs [0, `epochs`): `run_epoch(e)` trains (and validates) epoch `e` and returns its
    row; the row gets `epoch` (`e + first_epoch`) and `seconds`. `score(row)` (higher is better)
    picks the best epoch — a tie goes to the earlier one unless `ties_to_later` — whose `weights`
    are restored at the end (`restore_best`); without `score` the last epoch's weights stay.

    After each epoch `weights`, `state` (optimisers, schedulers, `GeneratorState`s: anything with
    `state_dict`) and the loop's own bookkeeping go to `checkpoints`; a resumed run reads them back
    and ends as an uninterrupted one would. `meta` (plain data) must match the checkpoint's, else a
    one-line error names the differing key. Every rank calls `fit`; scores must agree across ranks
    (early stopping follows rank 0's decision)."""
    state, meta = dict(state or {}), dict(meta or {})
    if early_stop.patience and score is None:
        raise RkdscError(f"{name}: early stopping needs a validation score")
    p = _resume(name, checkpoints, weights, state, meta)
    while p.epoch < epochs:
        t0 = time.time()
        row = {"epoch": p.epoch + first_epoch, **run_epoch(p.epoch)}
        row["seconds"] = time.time() - t0
        p.history.append(row)
        log.info("%s epoch %d: %s", name, row["epoch"], _summary(row))
        if score is not None:
            p.record(row, float(score(row)), weights, ties_to_later, restore_best)
        p.epoch += 1
        if early_stop.patience and p.epoch < (early_stop.until or epochs):
            if distributed.broadcast_object(p.stale >= early_stop.patience):
                log.info("%s: no better validation score for %d epochs: stopping", name, p.stale)
                p.stopped_at, p.stale = row["epoch"], 0
                p.epoch = early_stop.until or epochs
        if checkpoints is not None:
            checkpoints.save_checkpoint(
                {
                    "format": CHECKPOINT_FORMAT,
                    "meta": meta,
                    "weights": {k: m.state_dict() for k, m in weights.items()},
                    "state": {k: obj.state_dict() for k, obj in state.items()},
                    **vars(p),
                }
            )
    if p.best_weights is not None:
        for key, m in weights.items():
            m.load_state_dict(p.best_weights[key])
    return FitResult(p.history, p.best, p.stopped_at)


def _resume(name: str, checkpoints, weights, state: dict, meta: dict) -> _Progress:
    """The bookkeeping of the checkpoint (weights and state loaded from it), or a fresh start."""
    saved = checkpoints.load_checkpoint() if checkpoints is not None else None
    if saved is None:
        return _Progress()
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise RkdscError(
            f"{name}: the checkpoint was written by another version of the training loop: "
            "drop --resume or delete the stage's checkpoint.pt"
        )
    for key, value in meta.items():
        if saved["meta"].get(key) != value:
            raise RkdscError(
                f"{name} checkpoint was written for a different {key}: "
                "drop --resume or delete the stage's checkpoint.pt"
            )
    for key, m in weights.items():
        m.load_state_dict(saved["weights"][key])
    for key, obj in state.items():
        obj.load_state_dict(saved["state"][key])
    return _Progress(**{f.name: saved[f.name] for f in fields(_Progress)})


def _summary(row: dict) -> str:
    """The row's numbers (and flat dicts of numbers, e.g. validation scores) as JSON: the log line
    leaves out nested data such as a genotype."""

    def flat(v) -> bool:
        return v is None or isinstance(v, (int, float, str))

    keep = {
        k: v
        for k, v in row.items()
        if flat(v) or (isinstance(v, dict) and all(flat(x) for x in v.values()))
    }
    return json.dumps(keep)


def global_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """`order` (sample indices, the same on every rank) cut into global batches of `batch_size`."""
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def train_epoch(
    batches: Sequence[torch.Tensor],
    step: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    params: Iterable[torch.nn.Parameter],
    desc: str,
    grad_clip: float | None = 5.0,
) -> dict[str, float]:
    """One epoch over `batches` (global batches of sample indices, the same on every rank); each
    rank trains on its part of each, `step(idx)` returning named loss terms with "loss" (and
    optionally "acc") for that part. Returns each term's mean over the samples all ranks saw."""
    params = list(params)
    sums: dict[str, float] = {}
    bar = tqdm(batches, desc=desc)
    for batch in bar:
        if len(batch) < distributed.world_size():
            continue  # a part for every rank or none (only a tiny last batch)
        idx = distributed.part(batch)  # this rank's part of the global batch
        terms = step(idx)
        opt.zero_grad(set_to_none=True)
        (terms["loss"] * distributed.loss_scale(len(idx), len(batch))).backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        for key, v in terms.items():
            sums[key] = sums.get(key, 0.0) + float(v.detach()) * len(idx)
        sums["#"] = sums.get("#", 0.0) + len(idx)
        bar.set_postfix(
            {k: f"{float(terms[k].detach()):.3f}" for k in ("loss", "acc") if k in terms}
        )
    sums = distributed.all_reduce_sum(sums)  # over the global batches
    seen = sums.pop("#", 0.0)
    return {k: v / seen for k, v in sums.items()} if seen else {}


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Global batches in an epoch of `n` samples (the last one partial)."""
    return max(1, math.ceil(n / batch_size))
