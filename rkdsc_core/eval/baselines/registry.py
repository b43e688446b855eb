"""The baseline registry and its dispatch: `BASELINES` (name → runner, in report order;
`--baselines all` runs them in that order), `run_baselines` running the named ones on one
(channel, K) so that every method sees the same test images, SNRs and keyed channel draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.eval.baselines.analog import no_cat
from rkdsc_core.eval.baselines.capacity import capacity_bound
from rkdsc_core.eval.baselines.digital import feature_digital, image_digital, label_digital
from rkdsc_core.eval.baselines.features import BaselineRun, feature_cache
from rkdsc_core.eval.baselines.modem import CodeFactory
from rkdsc_core.registry import Registry
from rkdsc_core.runtime import Bundle

log = logging.getLogger(__name__)

# Budgets when the bundle holds no trained copy (`rkdsc train --stage baselines` exports one):
SINGLE_STAGE_STEPS = 150  # Adam steps, batch 64 (the student's DARTS cells are slow on CPU)
TEACHER_CAT_STEPS = 600  # Adam steps, batch 128, on teacher embeddings computed once
DEEPJSCC_STEPS = 300  # Adam steps of the DeepJSCC-CNN baseline (short, CPU budget)


def run_baselines(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    names: list[str],
    code_factory: CodeFactory | None,
    seed: int = 0,
    accuracy_at_tx: float | None = None,
) -> tuple[dict, dict]:
    """({name: [{"snr_db", "accuracy"}]}, {name: info}) for each baseline in `names`."""
    run = BaselineRun(bundle, data, train, channel, snrs, rate, code_factory, seed, accuracy_at_tx)
    curves: dict = {}
    info: dict = {}
    with feature_cache():
        for name in names:
            log.info("baseline %s on %s K=%d", name, channel, rate)
            curves[name], info[name] = BASELINES.get(name).run(run)  # unknown: lists the names
    return curves, info


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: `run(BaselineRun) -> (points, info)`; `digital` ones need a
    channel-code factory (gr-fec, handed in from the GNU Radio side)."""

    run: Callable[[BaselineRun], tuple[list[dict], dict]]
    digital: bool = False


def _learned(name: str, steps: int) -> Callable[[BaselineRun], tuple[list[dict], dict]]:
    """The runner of learned baseline `name` of `learned_baselines` with a budget of `steps` when
    the bundle holds no trained copy (imported when run: it builds and trains torch models)."""

    def run(r: BaselineRun) -> tuple[list[dict], dict]:
        from rkdsc_core.eval import learned_baselines

        train_and_sweep = getattr(learned_baselines, name)
        return train_and_sweep(r, steps)

    return run


#: The baseline registry, in report order (`--baselines all`): a new baseline is its function
#: (taking a `BaselineRun`) plus an entry here.
BASELINES: Registry[Baseline] = Registry(
    "baseline",
    {
        "no-cat": Baseline(no_cat),
        "deepjscc-cnn": Baseline(_learned("deepjscc_cnn", DEEPJSCC_STEPS)),
        "single-stage": Baseline(_learned("single_stage", SINGLE_STAGE_STEPS)),
        "teacher-over-channel": Baseline(_learned("teacher_over_channel", TEACHER_CAT_STEPS)),
        "label-digital": Baseline(label_digital, digital=True),
        "feature-digital": Baseline(feature_digital, digital=True),
        "feature-digital-16qam": Baseline(partial(feature_digital, m=16), digital=True),
        "image-digital": Baseline(image_digital, digital=True),
        "capacity-bound": Baseline(capacity_bound),
    },
)

ALL = BASELINES.names()
KNOWN = ALL
DIGITAL = tuple(name for name, b in BASELINES.items() if b.digital)
