"""Stage 2: train the CAT codec and head through the channel mix on a frozen (or slowly tuned)
student, with teacher targets from the feature store (PAPER.md §4–5, DESIGN.md §3). The epochs,
checkpoints, low-SNR phase, best epoch and DDP are `rkdsc_train.channel_fit`'s, shared with the
learned baselines; under torchrun the CAT, head and (when tuned) the student train through DDP.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from rkdsc_core import distributed
from rkdsc_core.channels import ChannelMix
from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.data.transforms import Normalisation, random_crop_flip, to_tensor
from rkdsc_core.distill.losses import KDWeights
from rkdsc_core.distill.robust import RobustDistiller
from rkdsc_core.errors import RkdscError
from rkdsc_core.eval.validation import score_points
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

log = logging.getLogger(__name__)


# CATConfig fields set by the `stage2.cat_<field>` keys
CAT_KEYS = (
    "tokens",
    "d_model",
    "heads",
    "enc_layers",
    "dec_layers",
    "enc_d_model",
    "enc_ff_mult",
    "enc_out",
)


def cat_config(cfg, feature_dim: int) -> CATConfig:
    """The CAT that `stage2` configures, for features of `feature_dim`."""
    s = cfg.stage2
    cat_keys = {k: getattr(s, f"cat_{k}") for k in CAT_KEYS}
    return CATConfig(feature_dim=feature_dim, k_max=s.k_max, rates=tuple(s.rates), **cat_keys)


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
def validate(distiller: RobustDistiller, feats: torch.Tensor, labels: torch.Tensor, seed: int):
    """Accuracy on the held-out features [N, D] at `VAL_POINTS` and K=16 (or nearest)."""
    cat, head = distiller.cat, distiller.head
    dev = next(cat.parameters()).device  # the held-out tensors stay on the CPU between epochs
    feats, labels = feats.to(dev), labels.to(dev)
    k = min(cat.cfg.rates, key=lambda r: abs(r - 16))

    def predict(channel, snr, gen):
        x = cat.encode(feats, k, None)
        out = channel(x[:, :k], torch.full((len(x),), snr, device=dev), generator=gen)
        return head(cat.decode_received(out.symbols, out.snr_eff_db))

    return score_points(predict, labels, seed, suffix=f"_K{k}")


class _TrainStep(torch.nn.Module):
    """One training forward as a single module (what DDP wraps): images → the student when it is
    tuned (light augmentation), else its stored features; then the robust distiller's losses."""

    def __init__(self, student, distiller: RobustDistiller, tune: bool, data: ChannelData) -> None:
        super().__init__()
        self.student, self.distiller, self.tune, self.data = student, distiller, tune, data

    def forward(self, idx: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        d, dev = self.data, next(self.distiller.parameters()).device
        if self.tune:
            f = self.student(random_crop_flip(d.x(idx), generator=generator).to(dev))[0]
        else:
            f = d.feats[idx].to(dev)
        z, lg, y = d.z_t[idx].to(dev), d.l_t[idx].to(dev), d.labels[idx].to(dev)
        return self.distiller.forward_train(f, z, lg, y, generator)


def run(ctx: StageContext) -> dict:
    cfg, s2, dev = ctx.cfg, ctx.cfg.stage2, ctx.device
    student, student_entry = load_stage1_student(ctx.run_dir)
    student = student.to(dev).eval()
    tune = s2.student_lr is not None
    student.requires_grad_(tune)
    d = load_channel_data(ctx)
    d.feats = student_features(student, d.images, d.norm, dev)
    n_tr = d.n_train
    cat = CATCodec(cat_config(cfg, d.feats.shape[1])).to(dev)
    head = torch.nn.Linear(d.feats.shape[1], d.num_classes).to(dev)
    head.load_state_dict(student.head.state_dict())
    if s2.init_from:
        init_from_bundle(cat, head, s2.init_from)
    weights = KDWeights(s2.feature_weight, s2.kl_weight, s2.ce_weight, s2.temperature)
    mix = ChannelMix.from_config(s2.channel)
    distiller = RobustDistiller(cat, head, mix, weights, s2.tx_snr_unknown_prob).to(dev)
    groups = [{"params": [*cat.parameters(), *head.parameters()], "lr": s2.lr}]
    if tune:
        groups.append({"params": list(student.parameters()), "lr": s2.student_lr})
    distributed.check_batch(s2.batch_size, "stage2.batch_size")

    def set_training(flag: bool) -> None:
        distiller.train(flag)
        student.train(tune and flag)

    def after_epoch() -> None:
        if tune:
            d.feats = student_features(student, d.images, d.norm, dev)

    trainee = ChannelTrainee(
        weights={"cat": cat, "head": head, "student": student},
        groups=groups,
        step=_TrainStep(student, distiller, tune, d),
        validate=lambda: validate(distiller, d.feats[n_tr:], d.labels[n_tr:], cfg.seed),
        set_training=set_training,
        epochs=s2.epochs,
        use_mix=lambda m: setattr(distiller, "mix", m),
        find_unused_parameters=tune,  # a tuned student's own classifier is unused
        after_epoch=after_epoch,
    )
    res = fit_through_channel(ctx, "stage2", trainee, n_tr, s2.batch_size, s2.early_stop_patience)
    metrics = {
        "student_tuned": tune,
        "student_spec": student_entry["spec"],
        "cat_spec": cat.cfg.to_dict(),
        "cat_params": count_params(cat),
        "head_params": count_params(head),
        "best": res.best,
        "stopped_at": res.stopped_at,
        "history": res.history,
        "train_images": n_tr,
        "val_images": len(d.labels) - n_tr,
        "provenance": provenance(config=None, seed=cfg.seed),
    }
    if ctx.is_main:  # rank 0 writes the weights and metrics
        for name, m in trainee.weights.items():
            if name != "student" or tune:
                save_file(cpu_state(m), str(ctx.stage_dir / f"{name}.safetensors"))
        ctx.write_json("metrics.json", metrics)
    return metrics
