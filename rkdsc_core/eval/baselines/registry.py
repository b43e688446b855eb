"""The baseline registry and its dispatch: `BASELINES` (name → runner, in report order;
`--baselines all` runs them in that order), `run_baselines` running the named ones on one
(channel, K) so that every method sees the same test images, SNRs and keyed channel draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.eval.baselines.analog import no_cat
from rkdsc_core.eval.baselines.capacity import capacity_bound_curve, capacity_snr_db
from rkdsc_core.eval.baselines.digital import feature_digital, image_digital, label_digital
from rkdsc_core.eval.baselines.features import feature_cache
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
class BaselineRun:
    """What every baseline runner is given: the methods compared at one (channel, K) see the same
    test images, SNRs and seed."""

    bundle: Bundle
    data: ImageArrays
    train: ImageArrays
    channel: str
    snrs: list[float]
    rate: int
    code_factory: CodeFactory | None
    seed: int
    accuracy_at_tx: float | None


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: `run(BaselineRun) -> (points, info)`; `digital` ones need a
    channel-code factory (gr-fec, handed in from the GNU Radio side)."""

    run: Callable[[BaselineRun], tuple[list[dict], dict]]
    digital: bool = False


#: The baseline registry, in report order (`--baselines all`): a new baseline is its function plus
#: a registered runner below.
BASELINES: Registry[Baseline] = Registry("baseline")


def _baseline(name: str, digital: bool = False):
    """Register the decorated `run(BaselineRun)` as baseline `name`."""

    def deco(run: Callable[[BaselineRun], tuple[list[dict], dict]]):
        BASELINES.register(name, Baseline(run, digital))
        return run

    return deco


@_baseline("no-cat")
def _no_cat(r: BaselineRun):
    return no_cat(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.seed)


@_baseline("deepjscc-cnn")
def _deepjscc_cnn(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import deepjscc_cnn

    steps = DEEPJSCC_STEPS
    return deepjscc_cnn(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, steps, seed=r.seed)


@_baseline("single-stage")
def _single_stage(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import single_stage

    steps = SINGLE_STAGE_STEPS
    return single_stage(r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, steps, seed=r.seed)


@_baseline("teacher-over-channel")
def _teacher_over_channel(r: BaselineRun):
    from rkdsc_core.eval.learned_baselines import teacher_over_channel

    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, TEACHER_CAT_STEPS)
    return teacher_over_channel(*args, seed=r.seed)


@_baseline("label-digital", digital=True)
def _label_digital(r: BaselineRun):
    return label_digital(r.bundle, r.data, r.channel, r.snrs, r.rate, r.code_factory, r.seed)


@_baseline("feature-digital", digital=True)
def _feature_digital_qpsk(r: BaselineRun):
    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.code_factory)
    return feature_digital(*args, 4, 0.5, r.seed)


@_baseline("feature-digital-16qam", digital=True)
def _feature_digital_16qam(r: BaselineRun):
    args = (r.bundle, r.data, r.train, r.channel, r.snrs, r.rate, r.code_factory)
    return feature_digital(*args, 16, 0.5, r.seed)


@_baseline("image-digital", digital=True)
def _image_digital(r: BaselineRun):
    return image_digital(r.bundle, r.data, r.channel, r.snrs, r.code_factory, seed=r.seed)


@_baseline("capacity-bound")
def _capacity_bound(r: BaselineRun):
    c = len(r.bundle.classes)
    acc = r.accuracy_at_tx if r.accuracy_at_tx is not None else 1.0
    pts = capacity_bound_curve(r.snrs, r.rate, c, r.channel, acc)
    inf = {
        "snr_db_threshold": capacity_snr_db(r.rate, c),
        "accuracy_at_tx": acc,
        "model": "outage bound (block Rayleigh)"
        if r.channel.startswith("rayleigh")
        else "AWGN step at K·log2(1+SNR) = log2 C",
        "meaning": "SNR above which the label can be sent with vanishing error (long "
        "codes); not an accuracy upper bound at finite K: below it a short code still "
        "delivers the right label part of the time (label-digital lies above the step)",
    }
    return pts, inf


ALL = BASELINES.names()
KNOWN = ALL
DIGITAL = tuple(name for name, b in BASELINES.items() if b.digital)
