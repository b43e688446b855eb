"""The epoch loop that stage 2 and the learned baselines share: global batches drawn from one
order, each rank training on its part (`rkdsc_core.distributed`), loss terms averaged over every
sample that all ranks saw."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from tqdm.auto import tqdm

from rkdsc_core import distributed


def train_epoch(
    order: torch.Tensor,
    batch_size: int,
    step: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: Iterable[torch.nn.Parameter],
    desc: str,
    grad_clip: float = 5.0,
) -> dict[str, float]:
    """One epoch over `order` (sample indices, the same on every rank) in global batches of
    `batch_size`; `step(idx)` returns named loss terms with "loss" (and "acc") for this rank's part.
    Returns each term's mean over the samples all ranks trained on."""
    params = list(params)
    sums: dict[str, float] = {}
    bar = tqdm(range(0, len(order), batch_size), desc=desc)
    for i in bar:
        batch = order[i : i + batch_size]
        if len(batch) < distributed.world_size():
            continue  # a part for every rank or none (only a tiny last batch)
        idx = distributed.part(batch)  # this rank's part of the global batch
        terms = step(idx)
        opt.zero_grad(set_to_none=True)
        (terms["loss"] * distributed.loss_scale(len(idx), len(batch))).backward()
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        sched.step()
        for key, v in terms.items():
            sums[key] = sums.get(key, 0.0) + float(v.detach()) * len(idx)
        sums["#"] = sums.get("#", 0.0) + len(idx)
        bar.set_postfix(loss=f"{float(terms['loss']):.3f}", acc=f"{float(terms['acc']):.3f}")
    sums = distributed.all_reduce_sum(sums)  # over the global batches
    seen = sums.pop("#", len(order))
    return {k: v / seen for k, v in sums.items()}
