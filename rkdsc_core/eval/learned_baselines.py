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

import numpy as np
import torch
from torch import nn

from rkdsc_core.bundle import load_component
from rkdsc_core.channels import ChannelMix, apply_keyed, make_channel
from rkdsc_core.data.datasets import ImageArrays
from rkdsc_core.data.subsets import validation_split
from rkdsc_core.data.transforms import to_tensor
from rkdsc_core.eval.harness import point
from rkdsc_core.eval.validation import score_points
from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn
from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params
from rkdsc_core.training_loop import EarlyStopping, fit, train_epoch

log = logging.getLogger(__name__)


def deepjscc_cnn(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    steps: int = 600,
    batch_size: int = 128,
    seed: int = 0,
    epochs: int = 1,
    patience: int = 0,
) -> tuple[list[dict], dict]:
    """DeepJSCC-CNN from the bundle (or trained here for `steps` Adam steps on `train`), swept
    over `snrs` on `data`."""
    trained = trained_baseline(bundle, "deepjscc-cnn", rate)
    if trained is not None:
        modules, info = trained
        return _sweep_deepjscc(modules["model"], bundle, data, channel, snrs, seed), info
    torch.manual_seed(seed)
    mix, mix_cfg = _mix(bundle)
    h, w, c = bundle.image_shape
    model = DeepJsccCnn(c, rate, len(bundle.classes))
    gen = torch.Generator().manual_seed(seed)

    def logits(idx, channel=mix, snr=None, g=gen):
        sym = model.encode(to_tensor(train.images[idx], bundle.norm))
        out = channel(sym, generator=g) if snr is None else channel(sym, snr, generator=g)
        return model.decode(out.symbols)

    budget = Budget(steps, batch_size, lr=2e-3, epochs=epochs, patience=patience, seed=seed)
    fitted = _train_here("deepjscc-cnn", [model], logits, train.labels, budget)
    pts = _sweep_deepjscc(model, bundle, data, channel, snrs, seed)
    info = {
        "source": "trained by rkdsc eval (no trained copy in the bundle)",
        "channel_uses": rate,
        "params": count_params(model),
        **fitted,
        "train_channel_mix": dict(mix_cfg) if mix_cfg else "awgn+rayleigh, -10..20 dB",
        "note": "short budget: a lower bound on what this architecture reaches",
    }
    return pts, info


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
    seed: int = 0


def _train_here(name: str, modules: list[nn.Module], logits, labels: np.ndarray, b: Budget):
    """Train `modules` with cross-entropy through `rkdsc_core.training_loop.fit`: `logits(idx)`
    → logits [B, C] of training images `idx` (int64 [B]) through the training channel mix, and
    `logits(idx, channel, snr, generator)` through a validation channel. Returns the budget's
    part of the info dict; the modules end in eval mode."""
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=b.lr)
    rng = np.random.default_rng(b.seed)
    pool, val = np.arange(len(labels)), np.arange(0)
    if b.patience:
        pool, val = validation_split(labels, 0.1, b.seed)
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
                lambda ch, snr, g: logits(val, ch, torch.full((len(val),), snr), g), y[val], b.seed
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


def _sweep_deepjscc(model, bundle: Bundle, data: ImageArrays, channel: str, snrs, seed: int):
    """Points with per-image `correct`, through the keyed draws RKD-SC's sweep uses."""
    ch = make_channel(channel)
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
            pred = model.decode(out.symbols).argmax(1).numpy()
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
    name: str,
    bundle: Bundle,
    modules: list[nn.Module],
    cat,
    head: nn.Module,
    feat_train,
    feat_test,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    channel: str,
    snrs,
    rate: int,
    budget: Budget,
) -> tuple[list[dict], dict]:
    """Train `modules` + `cat` + `head` with CE; `feat_train(idx)` → features [B, D] (with grad
    through `modules`), `feat_test(sl)` → features of the test slice."""
    seed = budget.seed
    torch.manual_seed(seed)
    mix, mix_cfg = _mix(bundle)
    gen = torch.Generator().manual_seed(seed)

    def logits(idx, ch=mix, snr=None, g=gen):
        return through_cat(cat, head, feat_train(idx), rate, ch, snr, g)

    fitted = _train_here(name, [*modules, cat, head], logits, train_labels, budget)
    pts = _sweep_cat(cat, head, feat_test, test_labels, channel, snrs, rate, seed)
    info = {
        "source": "trained by rkdsc eval (no trained copy in the bundle)",
        "channel_uses": rate,
        "params": sum(count_params(m) for m in [*modules, cat, head]),
        **fitted,
        "train_channel_mix": mix_cfg or "awgn+rayleigh, -10..20 dB",
        "note": "short budget: a lower bound on what this model reaches",
    }
    return pts, info


def _sweep_cat(cat, head, feat_test, test_labels, channel: str, snrs, rate: int, seed: int):
    """Accuracy vs SNR of features `feat_test(slice)` through CAT (K=rate) + head, with the keyed
    draws RKD-SC's sweep uses; points carry per-image `correct`."""
    ch = make_channel(channel)
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
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    steps: int = 150,
    batch_size: int = 64,
    seed: int = 0,
    epochs: int = 1,
    patience: int = 0,
) -> tuple[list[dict], dict]:
    """Student + CAT + head trained at once through the channel: from the bundle (stage 2's loss,
    `rkdsc train --stage baselines`), else a fresh one trained here with CE for `steps` steps."""
    trained = trained_baseline(bundle, "single-stage", rate)
    if trained is not None:
        (mods, info), norm = trained, bundle.norm

        def feat(sl):
            return mods["student"](to_tensor(data.images[sl], norm))[0]

        pts = _sweep_cat(mods["cat"], mods["head"], feat, data.labels, channel, snrs, rate, seed)
        return pts, info
    torch.manual_seed(seed)
    student, cat, head = _fresh(bundle, "student"), _fresh(bundle, "cat"), _fresh(bundle, "head")

    def feat_train(idx):
        return student(to_tensor(train.images[idx], bundle.norm))[0]

    def feat_test(sl):
        return student(to_tensor(data.images[sl], bundle.norm))[0]

    budget = Budget(steps, batch_size, epochs=epochs, patience=patience, seed=seed)
    pts, info = _train_and_sweep(
        "single-stage",
        bundle,
        [student],
        cat,
        head,
        feat_train,
        feat_test,
        train.labels,
        data.labels,
        channel,
        snrs,
        rate,
        budget,
    )
    return pts, info


def teacher_over_channel(
    bundle: Bundle,
    data: ImageArrays,
    train: ImageArrays,
    channel: str,
    snrs,
    rate: int,
    steps: int = 600,
    batch_size: int = 128,
    max_train: int = 2000,
    seed: int = 0,
    epochs: int = 1,
    patience: int = 0,
) -> tuple[list[dict], dict]:
    """The frozen teacher's embedding (computed once) → fresh CAT + head trained through the
    channel. The transmitter runs the teacher: the large-model deep-JSCC line."""
    teacher = bundle.teacher
    trained = trained_baseline(bundle, "teacher-over-channel", rate)

    def embed(images: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat(
                [
                    teacher.embed(to_tensor(images[i : i + 250], bundle.norm)).float()
                    for i in range(0, len(images), 250)
                ]
            )

    e_test = embed(data.images).clone()
    if trained is not None:
        mods, info = trained
        pts = _sweep_cat(
            mods["cat"], mods["head"], lambda sl: e_test[sl], data.labels, channel, snrs, rate, seed
        )
        info["teacher_params"] = count_params(teacher)
        info["params_note"] = "params: CAT + head trained by the pipeline; the teacher is frozen"
        return pts, info
    n_tr = min(len(train), max_train)
    e_train = embed(train.images[:n_tr]).clone()
    d = int(e_train.shape[1])
    torch.manual_seed(seed)
    cat = _fresh(bundle, "cat", feature_dim=d)
    head = _fresh(bundle, "head", in_features=d)
    budget = Budget(steps, batch_size, epochs=epochs, patience=patience, seed=seed)
    pts, info = _train_and_sweep(
        "teacher-over-channel",
        bundle,
        [],
        cat,
        head,
        lambda idx: e_train[idx],
        lambda sl: e_test[sl],
        train.labels[:n_tr],
        data.labels,
        channel,
        snrs,
        rate,
        budget,
    )
    info["teacher_params"] = count_params(teacher)
    info["embed_dim"] = d
    info["params_note"] = "params: CAT + head trained here; the teacher is frozen"
    return pts, info
