"""Learned baselines of issue 11: read from the bundle when the pipeline trained them
(`rkdsc train --stage baselines`, then export), else trained here with a short, reported budget.

- `deepjscc_cnn`: no teacher, no CAT, a CNN end-to-end through the channel;
- `single_stage`: a fresh student (the bundle's genotype) + CAT + head trained at once with
  cross-entropy through the channel (no stage 1, no teacher);
- `teacher_over_channel`: the frozen teacher's embedding through a fresh CAT + head (the
  deep-JSCC-with-a-large-model line of the paper's figure).

All train at the evaluated K only, through the bundle's training channel mix, with the SNR unknown
to the encoder and the effective per-symbol SNR given to the CAT decoder, as in stage 2.

`deepjscc_cnn` trains a small CNN encoder + MLP decoder-classifier end-to-end through the bundle's
own training channel mix (channels and SNR range from the manifest) at K symbols, with a short,
reported step budget, then measures accuracy vs SNR through the same evaluation channel as RKD-SC.
Images uint8 [N, H, W, C] → normalised [N, C, H, W] → 2K reals → K complex symbols (unit average
power per image) → channel (perfect-CSI MMSE equalisation) → logits [N, C].
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from rkdsc_core.bundle import load_component
from rkdsc_core.channels import ChannelMix, apply_keyed, make_channel
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.eval.harness import point
from rkdsc_core.eval.validation import score_points
from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn
from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params
from rkdsc_core.training_loop import EarlyStopping, fit, train_epoch

if TYPE_CHECKING:  # annotations only: the baseline registry imports this module when it runs
    from rkdsc_core.eval.baselines.features import BaselineRun

log = logging.getLogger(__name__)


def deepjscc_cnn(
    r: BaselineRun, steps: int = 600, batch_size: int = 128, epochs: int = 1, patience: int = 0
) -> tuple[list[dict], dict]:
    """DeepJSCC-CNN from the bundle (or trained here: `epochs` of `steps` Adam steps on `r.train`,
    see `Budget`), swept over `r.snrs` on `r.data`."""
    bundle, train = r.bundle, r.train
    trained = trained_baseline(bundle, "deepjscc-cnn", r.rate)
    if trained is not None:
        modules, info = trained
        return _sweep_deepjscc(modules["model"], r), info
    torch.manual_seed(r.seed)
    mix, mix_cfg = _mix(bundle)
    model = DeepJsccCnn(bundle.image_shape[2], r.rate, len(bundle.classes), snr_input=True)
    gen = torch.Generator().manual_seed(r.seed)

    def logits(idx, channel=mix, snr=None, g=gen):
        sym = model.encode(to_tensor(train.images[idx], bundle.norm))
        out = channel(sym, generator=g) if snr is None else channel(sym, snr, generator=g)
        return model.decode(out.symbols, out.snr_eff_db)

    budget = Budget(steps, batch_size, lr=2e-3, epochs=epochs, patience=patience)
    fitted = _train_here("deepjscc-cnn", [model], logits, train.labels, budget, r.seed)
    info = {
        "source": "trained by rkdsc eval (no trained copy in the bundle)",
        "channel_uses": r.rate,
        "params": count_params(model),
        **fitted,
        "train_channel_mix": dict(mix_cfg) if mix_cfg else "awgn+rayleigh, -10..20 dB",
        "note": "short budget: a lower bound on what this architecture reaches",
    }
    return _sweep_deepjscc(model, r), info


@dataclass(frozen=True)
class Budget:
    """The on-the-fly trainer's budget: `epochs` of `steps` Adam steps (learning rate `lr`) on
    batches of `batch_size` training images drawn with replacement; with `patience` > 0, early
    stopping on a held-out tenth of the training images at `VAL_POINTS` (best epoch restored)."""

    steps: int
    batch_size: int
    lr: float = 1e-3
    epochs: int = 1
    patience: int = 0


def _train_here(
    name: str, modules: list[nn.Module], logits, labels: np.ndarray, b: Budget, seed: int
) -> dict:
    """Train `modules` with cross-entropy through `rkdsc_core.training_loop.fit`: `logits(idx)`
    → logits [B, C] of training images `idx` (int64 [B]) through the training channel mix, and
    `logits(idx, channel, snr, generator)` through a validation channel. Returns the budget's
    part of the info dict; the modules end in eval mode."""
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=b.lr)
    rng = np.random.default_rng(seed)
    pool, val = np.arange(len(labels)), np.arange(0)
    if b.patience:
        pool, val = validation_split(labels, 0.1, seed)
    y = torch.from_numpy(labels.astype(np.int64))

    def set_training(flag: bool) -> None:
        for m in modules:
            m.train(flag)

    def run_epoch(epoch: int) -> dict:
        set_training(True)
        draws = [rng.integers(0, len(pool), b.batch_size) for _ in range(b.steps)]
        batches = [torch.from_numpy(pool[d]) for d in draws]  # with replacement

        def step(idx):
            return {"loss": nn.functional.cross_entropy(logits(idx.numpy()), y[idx])}

        row = train_epoch(batches, step, opt, None, params, name, grad_clip=None)
        set_training(False)
        if b.patience:
            row["val"] = score_points(
                lambda ch, snr, g: logits(val, ch, torch.full((len(val),), snr), g), y[val], seed
            )
        return row

    t0 = time.time()
    res = fit(
        name,
        b.epochs,
        run_epoch,
        {str(i): m for i, m in enumerate(modules)},
        score=(lambda row: float(np.mean(list(row["val"].values())))) if b.patience else None,
        early_stop=EarlyStopping(b.patience),
    )
    set_training(False)
    info = {
        "train_steps": b.steps * len(res.history),
        "batch_size": b.batch_size,
        "train_images": len(pool),
        "train_seconds": round(time.time() - t0, 1),
    }
    if b.patience:
        info.update(
            val_images=len(val), patience=b.patience, best=res.best, epochs=len(res.history)
        )
    return info


def _sweep_deepjscc(model, r: BaselineRun) -> list[dict]:
    """Points with per-image `correct`, through the keyed draws RKD-SC's sweep uses."""
    bundle, data, snrs, seed = r.bundle, r.data, r.snrs, r.seed
    ch = make_channel(r.channel)
    index = np.arange(len(data))
    pts = []
    with torch.inference_mode():
        sym = torch.cat(
            [
                model.encode(to_tensor(data.images[i : i + 500], bundle.norm))
                for i in range(0, len(data), 500)
            ]
        )
        for s in snrs:
            out = apply_keyed(ch, sym, float(s), index, seed)
            pred = model.decode(out.symbols, out.snr_eff_db).argmax(1).numpy()
            pts.append(point({"snr_db": float(s)}, pred == data.labels))
    return pts


def trained_baseline(bundle: Bundle, name: str, rate: int) -> tuple[dict, dict] | None:
    """({component: module}, info) of baseline `name` trained by the pipeline and exported into
    the bundle at this `rate`; None when the bundle has none (or one for another rate)."""
    entry = bundle.manifest.get("baselines", {}).get(name)
    if entry is None:
        return None
    if int(entry["rate"]) != int(rate):
        log.warning("bundle baseline %s was trained at K=%s, not %s", name, entry["rate"], rate)
        return None
    modules = {
        comp: load_component(bundle.path, key, bundle.manifest)
        for comp, key in entry["components"].items()
    }
    info = {
        "source": "bundle (trained by rkdsc train --stage baselines)",
        "channel_uses": int(rate),
        **{k: v for k, v in entry.items() if k != "components"},
    }
    return modules, info


def _mix(bundle: Bundle) -> tuple[ChannelMix, dict]:
    cfg = bundle.manifest.get("training", {}).get("channel_mix", {})
    mix = ChannelMix(
        cfg.get("channels", ["awgn", "rayleigh"]),
        cfg.get("weights"),
        float(cfg.get("snr_min_db", -10.0)),
        float(cfg.get("snr_max_db", 20.0)),
    )
    return mix, dict(cfg)


def through_cat(cat, head, feat: torch.Tensor, rate: int, channel, snr=None, generator=None):
    """feature [B, D] → CAT encode (K=rate) → channel → CAT decode → head → logits [B, C]."""
    sym = cat.encode(feat, rate)[:, :rate]
    out = (
        channel(sym, snr, generator=generator)
        if snr is not None
        else channel(sym, generator=generator)
    )
    return head(cat.decode_received(out.symbols, out.snr_eff_db))


def _train_and_sweep(
    name: str, r: BaselineRun, modules: list[nn.Module], feats, train_labels, budget: Budget
) -> tuple[list[dict], dict]:
    """Train `modules` (the last two: CAT, head) with CE; `feats(idx)` → training features
    [B, D] (with grad through the first modules), `feats(sl, test=True)` → test features."""
    cat, head = modules[-2:]
    torch.manual_seed(r.seed)
    mix, mix_cfg = _mix(r.bundle)
    gen = torch.Generator().manual_seed(r.seed)

    def logits(idx, ch=mix, snr=None, g=gen):
        return through_cat(cat, head, feats(idx), r.rate, ch, snr, g)

    fitted = _train_here(name, modules, logits, train_labels, budget, r.seed)
    pts = _sweep_cat(cat, head, lambda sl: feats(sl, test=True), r)
    info = {
        "source": "trained by rkdsc eval (no trained copy in the bundle)",
        "channel_uses": r.rate,
        "params": sum(count_params(m) for m in modules),
        **fitted,
        "train_channel_mix": mix_cfg or "awgn+rayleigh, -10..20 dB",
        "note": "short budget: a lower bound on what this model reaches",
    }
    return pts, info


def _sweep_cat(cat, head, feat_test, r: BaselineRun) -> list[dict]:
    """Accuracy vs SNR of features `feat_test(slice)` of `r.data` through CAT (K = `r.rate`) +
    head, with the keyed draws RKD-SC's sweep uses; points carry per-image `correct`."""
    test_labels, snrs, rate, seed = r.data.labels, r.snrs, r.rate, r.seed
    ch = make_channel(r.channel)
    pts = []
    with torch.inference_mode():
        feats = torch.cat([feat_test(slice(i, i + 500)) for i in range(0, len(test_labels), 500)])
        sym = cat.encode(feats, rate)[:, :rate]
        for s in snrs:
            pred = []
            for i in range(0, len(feats), 1000):
                idx = np.arange(i, min(i + 1000, len(feats)))
                out = apply_keyed(ch, sym[i : i + 1000], float(s), idx, seed)
                pred.append(head(cat.decode_received(out.symbols, out.snr_eff_db)).argmax(1))
            pts.append(point({"snr_db": float(s)}, torch.cat(pred).numpy() == test_labels))
    return pts


def _fresh(bundle: Bundle, name: str, **override) -> nn.Module:
    from rkdsc_core.bundle import BUILDERS

    spec = dict(bundle.manifest[name]["spec"])
    spec.update(override)
    return BUILDERS[name](spec)


def single_stage(
    r: BaselineRun, steps: int = 150, batch_size: int = 64, epochs: int = 1, patience: int = 0
) -> tuple[list[dict], dict]:
    """Student + CAT + head trained at once through the channel: from the bundle (stage 2's loss,
    `rkdsc train --stage baselines`), else a fresh one trained here with CE (see `Budget`)."""
    bundle = r.bundle
    trained = trained_baseline(bundle, "single-stage", r.rate)
    if trained is not None:
        mods, info = trained
    else:
        torch.manual_seed(r.seed)
        mods = {name: _fresh(bundle, name) for name in ("student", "cat", "head")}

    def feats(idx, test=False):
        images = (r.data if test else r.train).images
        return mods["student"](to_tensor(images[idx], bundle.norm))[0]

    if trained is not None:
        return _sweep_cat(mods["cat"], mods["head"], lambda sl: feats(sl, test=True), r), info
    budget = Budget(steps, batch_size, epochs=epochs, patience=patience)
    return _train_and_sweep("single-stage", r, list(mods.values()), feats, r.train.labels, budget)


def teacher_over_channel(
    r: BaselineRun,
    steps: int = 600,
    batch_size: int = 128,
    epochs: int = 1,
    patience: int = 0,
    max_train: int = 2000,
) -> tuple[list[dict], dict]:
    """The frozen teacher's embedding (computed once) → fresh CAT + head trained through the
    channel. The transmitter runs the teacher: the large-model deep-JSCC line."""
    teacher, bundle = r.bundle.teacher, r.bundle
    trained = trained_baseline(bundle, "teacher-over-channel", r.rate)

    def embed(images: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat(
                [
                    teacher.embed(to_tensor(images[i : i + 250], bundle.norm)).float()
                    for i in range(0, len(images), 250)
                ]
            )

    e_test = embed(r.data.images).clone()
    if trained is not None:
        mods, info = trained
        pts = _sweep_cat(mods["cat"], mods["head"], lambda sl: e_test[sl], r)
        info["teacher_params"] = count_params(teacher)
        info["params_note"] = "params: CAT + head trained by the pipeline; the teacher is frozen"
        return pts, info
    n_tr = min(len(r.train), max_train)
    e_train = embed(r.train.images[:n_tr]).clone()
    d = int(e_train.shape[1])
    torch.manual_seed(r.seed)
    modules = [_fresh(bundle, "cat", feature_dim=d), _fresh(bundle, "head", in_features=d)]
    budget = Budget(steps, batch_size, epochs=epochs, patience=patience)
    pts, info = _train_and_sweep(
        "teacher-over-channel",
        r,
        modules,
        lambda idx, test=False: (e_test if test else e_train)[idx],
        r.train.labels[:n_tr],
        budget,
    )
    info["teacher_params"] = count_params(teacher)
    info["embed_dim"] = d
    info["params_note"] = "params: CAT + head trained here; the teacher is frozen"
    return pts, info
