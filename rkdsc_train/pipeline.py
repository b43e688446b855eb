"""Runs training stages in order; each stage is a function `run(ctx: StageContext) -> dict`.

Under torchrun every rank runs every stage (data-parallel, see `rkdsc_core.distributed`) except
`export`, which rank 0 runs alone while the others finish; all ranks meet at a barrier after each
other stage, so a stage always reads complete outputs of the stages before it.
"""

from __future__ import annotations

import importlib
import logging
import time

from rkdsc_core import distributed
from rkdsc_core.config import Config, load_config, save_config
from rkdsc_core.errors import RkdscError
from rkdsc_core.outputs import output_problem
from rkdsc_core.registry import Registry
from rkdsc_core.seeding import seed_everything
from rkdsc_train.context import StageContext, resolve_device

log = logging.getLogger(__name__)

# The stage registry, in pipeline order: name -> "module:function"; a stage's module is imported
# only when that stage runs.
STAGES: Registry[str] = Registry(
    "stage",
    {
        "teacher": "rkdsc_train.stages.teacher:run",
        "store": "rkdsc_train.stages.store:run",
        "search": "rkdsc_train.stages.search:run",
        "stage1": "rkdsc_train.stages.stage1:run",
        "stage2": "rkdsc_train.stages.stage2:run",
        "baselines": "rkdsc_train.stages.baselines:run",
        "export": "rkdsc_train.stages.export:run",
    },
)
# Stages rank 0 runs alone under torchrun (no training in them; last in STAGES, so the other ranks
# need not wait for them — a long export cannot run into the process-group timeout).
MAIN_ONLY = ("export",)


def _stage_fn(name: str):
    mod_name, fn_name = STAGES[name].split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name == mod_name:
            raise RkdscError(f"stage '{name}' is not implemented in this version") from None
        raise
    return getattr(mod, fn_name)


def _run_stage(fn, ctx: StageContext):
    """`fn(ctx)`; a checkpoint that no longer fits the config (e.g. resumed after a width change)
    becomes a one-line RkdscError instead of torch's multi-line RuntimeError."""
    try:
        return fn(ctx)
    except RuntimeError as exc:
        if not (ctx.resume and "state_dict" in str(exc)):
            raise
        first = str(exc).strip().splitlines()[0]
        raise RkdscError(
            f"stage {ctx.name}: its checkpoint {ctx.checkpoint_path} does not fit the current "
            f"config ({first}); run without --resume or with another out_dir"
        ) from None


def resolve_config(config_path, overrides) -> Config:
    """The run's config, its values and its out_dir checked (ConfigError / RkdscError naming the
    key): what `rkdsc train` does before any work."""
    cfg = load_config(config_path, overrides)
    problem = output_problem(cfg.out_dir, folder=True)
    if problem:  # now, not when the first stage writes
        raise RkdscError(f"config key 'out_dir': {cfg.out_dir!r} {problem}")
    return cfg


def run_pipeline(config_path, overrides, stages=None, resume=False) -> dict:
    """Resolve the config, then run `stages` (default: all, in order); returns stage results."""
    cfg = resolve_config(config_path, overrides)
    names = list(stages) if stages else list(STAGES)
    unknown = [s for s in names if s not in STAGES]
    if unknown:  # an RkdscError listing the stages
        raise STAGES.unknown(unknown[0])
    names = [s for s in STAGES if s in names]  # always in pipeline order
    with distributed.session(resolve_device(cfg.device).type):
        if distributed.is_main():
            save_config(cfg, f"{cfg.out_dir}/config.yaml")
        results = {}
        for name in names:
            fn = _stage_fn(name)
            seed_everything(cfg.seed)
            ctx = StageContext(cfg, name, resume=resume)
            t0 = time.time()
            log.info(
                "stage %s: start (out %s%s)",
                name,
                ctx.stage_dir,
                f", {distributed.world_size()} ranks" if distributed.is_active() else "",
            )
            if name in MAIN_ONLY:
                if distributed.is_main():
                    results[name] = _run_stage(fn, ctx)
            else:
                results[name] = _run_stage(fn, ctx)
                distributed.barrier()
            log.info("stage %s: done in %.1f s", name, time.time() - t0)
    return results
