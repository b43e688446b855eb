"""Stage "search": KDL-DARTS on the training split with stored teacher targets (PAPER.md §3).

`search.train_limit` training images (a seeded class-balanced subset) are split 50/50 (stratified)
into a weight split and an α split. Writes into `<out_dir>/search/`: `genotype.yaml` +
`genotype.png`, the α history (`alpha_history.json`), the expected cost and losses per epoch
(`metrics.json`) and `search_curves.png`; a checkpoint every epoch lets `--resume` continue an
interrupted search. Under torchrun each rank searches on its part of every global (w, α) batch
pair; rank 0 writes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import torch

from rkdsc_core import distributed
from rkdsc_core.config import Config, to_dict
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.subsets import balanced_subset, validation_split
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.distill.batches import KDData, evaluate, iterate, num_batches, progress
from rkdsc_core.nas.cost import count_flops
from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.plots import plot_genotype, plot_search_curves
from rkdsc_core.nas.search import SupernetSearch, search_macro
from rkdsc_core.nas.student import build_student
from rkdsc_core.provenance import provenance
from rkdsc_core.torch_utils import count_params
from rkdsc_core.training_loop import fit
from rkdsc_train.context import StageContext

log = logging.getLogger(__name__)

GENOTYPE_FILE = "genotype.yaml"


def configure_cpu(num_threads: int | None) -> None:
    """Fix torch's CPU thread count (one thread is faster than two on a busy 2-core machine)."""
    if num_threads is not None:
        torch.set_num_threads(num_threads)


def load_train_data(cfg: Config, ctx: StageContext) -> KDData:
    """The training split (`data.train_limit` of it: a class-balanced subset) with its stored
    teacher targets."""
    from rkdsc_train.targets import teacher_targets

    arrays = load_configured(cfg.data, "train")
    targets = teacher_targets(ctx, "train").take(len(arrays))
    return KDData(arrays, targets, Normalisation.for_dataset(cfg.data.name))


def split_indices(labels, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded class-balanced subset of `min(N, limit)` of `labels int64 [N]`, halved into
    class-stratified (w split, α split) position arrays."""
    chosen = balanced_subset(labels, limit, seed)
    w, a = validation_split(np.asarray(labels)[chosen], 0.5, seed)
    return chosen[w], chosen[a]


def student_arch(cfg: Config, data: KDData) -> dict:
    """Plain-data constructor arguments of the derived student (stage-1 sizes)."""
    images = data.arrays.images
    return dict(
        in_channels=int(images.shape[-1]),
        num_classes=len(data.arrays.classes),
        feature_dim=int(data.targets.dim),
        init_channels=cfg.stage1.init_channels,
        layers=cfg.stage1.layers,
        stem_multiplier=cfg.stage1.stem_multiplier,
        stem_stride=cfg.stage1.stem_stride,
    )


def derived_size(genotype: Genotype, arch: dict, image_size: int) -> dict:
    """Parameters and FLOPs of the student built from `genotype` with `arch`."""
    net = build_student(genotype, **arch)
    return {
        "params": count_params(net),
        "flops": count_flops(net, (1, arch["in_channels"], image_size, image_size)),
    }


def run(ctx: StageContext) -> dict:
    configure_cpu(ctx.cfg.search.num_threads)
    return search(ctx, load_train_data(ctx.cfg, ctx))


def search(ctx: StageContext, data: KDData) -> dict:
    """Run (or resume) the search on `data`; returns the metrics written to `metrics.json`."""
    cfg, s = ctx.cfg, ctx.cfg.search
    w_idx, a_idx = split_indices(data.arrays.labels, s.train_limit, cfg.seed)
    steps = num_batches(len(w_idx), s.batch_size, drop_last=True)
    distributed.check_batch(s.batch_size, "search.batch_size")
    image_size = int(data.arrays.images.shape[1])
    macro = search_macro(
        s, int(data.arrays.images.shape[-1]), len(data.arrays.classes), data.targets.dim
    )
    runner = SupernetSearch(
        s, macro, image_size, steps, torch.Generator().manual_seed(cfg.seed), ctx.device
    )
    log.info(
        "search: %d w / %d α images, %d steps/epoch, supernet %d weights, C_ref %.0f %s",
        len(w_idx),
        len(a_idx),
        steps,
        sum(p.numel() for p in runner.model.weight_parameters()),
        runner.objective.cost.reference,
        s.cost_metric,
    )
    eval_idx = a_idx[balanced_subset(data.arrays.labels[a_idx], s.eval_limit, cfg.seed)]
    first_alphas = {"epoch": -1, **runner.alpha_weights()}  # before a resume loads later ones

    def run_epoch(epoch: int) -> dict:
        rng = np.random.default_rng([cfg.seed, epoch])
        pairs = zip(
            iterate(data, w_idx, s.batch_size, rng, drop_last=True, sharded=True),
            iterate(data, a_idx, s.batch_size, rng, drop_last=True, sharded=True),
        )
        with progress(steps, f"search {epoch + 1}/{s.epochs}") as bar:
            losses = runner.train_epoch(epoch, pairs, bar)
        score = evaluate(runner.model, data, eval_idx, device=ctx.device, sharded=True)
        return {
            **losses,
            "expected_cost": runner.expected_cost(),
            "eval_accuracy": score["accuracy"],
            "genotype": runner.genotype().to_dict(),
            "alphas": runner.alpha_weights(),
        }

    # the search keeps its last α (no best-epoch selection)
    res = fit("search", s.epochs, run_epoch, {}, state={"search": runner}, checkpoints=ctx)
    history = [{k: v for k, v in row.items() if k != "alphas"} for row in res.history]
    alphas = [first_alphas] + [{"epoch": row["epoch"], **row["alphas"]} for row in res.history]
    return finish(ctx, runner, data, history, alphas, image_size)


def finish(
    ctx: StageContext,
    runner: SupernetSearch,
    data: KDData,
    history: list,
    alphas: list,
    image_size: int,
) -> dict:
    """Write genotype, α history, metrics and plots; returns the metrics."""
    cfg, out = ctx.cfg, ctx.stage_dir
    genotype = runner.genotype()
    if not ctx.is_main:  # rank 0 writes; α is the same on every rank
        return {"genotype": genotype.to_dict(), "history": history}
    genotype.save(out / GENOTYPE_FILE)
    plot_genotype(genotype, out / "genotype.png")
    space = runner.space
    ctx.write_json(
        "alpha_history.json",
        {
            "primitives": list(space.primitives),
            "edges": [list(e) for e in space.edges()],
            "epochs": alphas,
        },
    )
    plot_search_curves(history, alphas, list(space.primitives), out / "search_curves.png")
    metrics = {
        "genotype": genotype.to_dict(),
        "cost_metric": cfg.search.cost_metric,
        "cost_reference": runner.objective.cost.reference,
        "lambda_cost": cfg.search.lambda_cost,
        "expected_cost_per_epoch": [row["expected_cost"] for row in history],
        "search_seconds": sum(row["seconds"] for row in history),
        "supernet_macro": asdict(runner.model.macro),
        "derived": derived_size(genotype, student_arch(cfg, data), image_size),
        "history": history,
        "provenance": provenance(to_dict(cfg), cfg.seed),
    }
    ctx.write_json("metrics.json", metrics)
    log.info(
        "search: genotype %s; derived student %d params, %d FLOPs; %.0f s",
        out / GENOTYPE_FILE,
        metrics["derived"]["params"],
        metrics["derived"]["flops"],
        metrics["search_seconds"],
    )
    return metrics
