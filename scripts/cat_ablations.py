"""The CAT's ablations (issue 19, item 6) and stage 2's training-seed spread (item 3), at one
short CPU budget that is the same for every row, regenerated from this file's row table.

Codec rows (`ROWS` says what each changes): stage 2 (the bundle's CAT config, loss, channel mix
and SNR-hiding share) trained from scratch for `--steps` AdamW steps of `--batch` on the frozen
student's clean features of stage 2's training images, one-cycle learning rate, last step kept
(nothing is chosen on any split). Rows in `SMALL` use a class-balanced pool of `--train-images`;
the stage-1 rows first train a fresh student of the bundle's genotype `--stage1-epochs` epochs
there (the conference paper's MSE-only loss or the shipped feature MSE + KL + CE).

Every row is scored on the test split, through the keyed channel draws every method uses (same
images, same h and noise), with the encoder told nothing (as every evaluation): accuracy, Wilson
ci95 and the exact paired McNemar p against its comparison row.

Usage: python scripts/cat_ablations.py --work runs/ablations --json results/cat_ablations.json
       (resumable: finished rows are read back from --work; ~1 h on 2 shared cores)
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rkdsc_core.channels import ChannelMix, make_channel
from rkdsc_core.channels.draws import apply_keyed
from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.codec.mlp import MLPCodec
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.subsets import balanced_subset, validation_split
from rkdsc_core.data.transforms import map_images, to_tensor
from rkdsc_core.distill.losses import KDWeights, kd_objective
from rkdsc_core.distill.robust import RobustDistiller
from rkdsc_core.eval import stats
from rkdsc_core.outputs import write_json
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle
from rkdsc_core.torch_utils import count_params, cpu_state

log = logging.getLogger("cat_ablations")

#: row → (what it changes, the row its McNemar p is taken against). Rows in SMALL train their
#: codec on the `--train-images` pool (stage-1 rows also their student); the rest on all of stage
#: 2's training images.
ROWS = {
    "reference": ("the shipped configuration (nested CAT, stage-2 loss) at this budget", None),
    "decoder-no-snr": ("decoder given a constant 0 dB instead of each symbol's SNR", "reference"),
    "per-k16": ("codec trained at K = 16 alone instead of the nested rates", "reference"),
    "encoder-told-snr": ("the reference codec, encoder told the channel's SNR", "reference"),
    "reference-small": ("the reference on the smaller pool (training seeds)", None),
    "mlp-codec": ("MLP encoder and decoder of the CAT's parameter counts", "reference-small"),
    "stage1-shipped-loss": ("fresh student, short stage 1, shipped loss", "reference-small"),
    "stage1-mse-only": (
        "fresh student, short stage 1 with feature MSE only",
        "stage1-shipped-loss",
    ),
    "shipped-bundle": ("the shipped bundle's own codec (full budget), for scale", "reference"),
}
SMALL = ("reference-small", "mlp-codec", "stage1-shipped-loss", "stage1-mse-only")
SEEDED = "reference-small"  # the row trained with every --seeds ("reference": --reference-seeds)
STAGE1_WEIGHTS = {"stage1-mse-only": (1.0, 0.0, 0.0), "stage1-shipped-loss": None}  # None: bundle's


class BlindDecoderCAT(CATCodec):
    """The CAT with its decoder's SNR input removed: every symbol is read as if at 0 dB."""

    def decode(self, y: torch.Tensor, snr_db: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return super().decode(y, torch.zeros_like(snr_db, dtype=torch.float32), mask)


def make_codec(row: str, cfg: CATConfig) -> CATCodec:
    if row == "decoder-no-snr":
        return BlindDecoderCAT(cfg)
    if row == "per-k16":
        return CATCodec(CATConfig.from_dict({**cfg.to_dict(), "rates": [16]}))
    if row == "mlp-codec":
        ref = CATCodec(cfg)
        return MLPCodec(cfg, count_params(ref.encoder), count_params(ref.decoder))
    return CATCodec(cfg)


def features(student, images: np.ndarray, norm) -> torch.Tensor:
    """Clean student features float32 [N, D]."""
    return map_images(lambda x: student.eval()(x)[0], images, norm)


def teacher_targets(bundle, data, store_root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher embeddings [N, E] and logits [N, C] of `data` (clean), through the feature store."""
    from rkdsc_core.data.feature_store import FeatureStore

    e = FeatureStore(store_root).get_or_build(
        bundle.teacher, data.name, data.split, data.images, data.labels, bundle.norm, views=1
    )
    return torch.from_numpy(np.array(e.embeddings[0])), torch.from_numpy(np.array(e.logits[0]))


def train_codec(row, cfg, s2, head_init, feats, z_t, l_t, labels, args, seed) -> tuple:
    """Stage 2 at the budget: `args.steps` steps of `args.batch`; returns (codec, head, secs)."""
    torch.manual_seed(seed)
    cat = make_codec(row, cfg)
    head = torch.nn.Linear(feats.shape[1], l_t.shape[1])
    head.load_state_dict(head_init.state_dict())
    mix = ChannelMix.from_config(s2.channel)
    w = KDWeights(s2.feature_weight, s2.kl_weight, s2.ce_weight, s2.temperature)
    distiller = RobustDistiller(cat, head, mix, w, s2.tx_snr_unknown_prob)
    params = list(cat.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=s2.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, s2.lr, total_steps=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    distiller.train()
    for step in range(args.steps):
        idx = torch.randint(len(feats), (args.batch,), generator=gen)
        out = distiller.forward_train(feats[idx], z_t[idx], l_t[idx], labels[idx], gen)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            log.info("%s seed %d step %d loss %.3f", row, seed, step, float(out["loss"].detach()))
    return cat.eval(), head.eval(), time.time() - t0


def train_student(bundle, weights, images, z_t, l_t, labels, args) -> tuple:
    """A fresh student of the bundle's genotype, stage 1 on clean images; (student, seconds)."""
    from rkdsc_core.nas.student import student_from_spec

    torch.manual_seed(0)
    s1 = args.run_cfg.stage1
    student = student_from_spec(bundle.manifest["student"]["spec"])
    w = KDWeights(*(weights or (s1.feature_weight, s1.kl_weight, s1.ce_weight)), s1.temperature)
    bs = min(s1.batch_size, len(images))
    per_epoch = len(images) // bs
    opt = torch.optim.AdamW(student.parameters(), lr=s1.lr, weight_decay=s1.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, s1.lr, total_steps=max(1, per_epoch * args.stage1_epochs), pct_start=0.1
    )
    rng = np.random.default_rng(0)
    t0 = time.time()
    student.train()
    for epoch in range(args.stage1_epochs):
        order = rng.permutation(len(images))
        for i in range(per_epoch):
            idx = order[i * bs : (i + 1) * bs]
            feat, logits = student(to_tensor(images[idx], bundle.norm))
            terms = kd_objective(feat, logits, labels[idx], z_t[idx], l_t[idx], w)
            opt.zero_grad()
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            opt.step()
            sched.step()
        log.info("stage 1 %s epoch %d loss %.3f", weights, epoch, float(terms["loss"].detach()))
    return student.eval(), time.time() - t0


@torch.no_grad()
def score(cat, head, feats, labels, args, told: bool = False) -> dict:
    """{"<channel>_<snr>": bool [N] correct} at K = args.rate through the keyed draws."""
    out = {}
    index = np.arange(len(labels))
    unknown = cat.encode(feats, args.rate)[:, : args.rate]
    for s in args.snrs:
        sym = cat.encode(feats, args.rate, s)[:, : args.rate] if told else unknown
        for ch in ("awgn", "rayleigh"):
            rx = apply_keyed(make_channel(ch), sym, s, index, args.seed)
            pred = head(cat.decode_received(rx.symbols, rx.snr_eff_db)).argmax(1).numpy()
            out[f"{ch}_{s:g}"] = pred == labels
    return out


def run_row(row, seed, ctx, args) -> dict:
    """Train (or read back from --work) one row at one seed; its per-point correct arrays."""
    done = Path(args.work) / f"{row}_seed{seed}.npz"
    if done.exists():
        z = np.load(done)
        return {
            "correct": {k: z[k] for k in z.files if k != "seconds"},
            "seconds": float(z["seconds"]),
        }
    bundle, s2, cfg = ctx["bundle"], ctx["s2"], ctx["cat_cfg"]
    secs = 0.0
    if row == "shipped-bundle":
        cat, head = bundle.cat.eval(), bundle.head.eval()
        correct = score(cat, head, ctx["test_feats"](), ctx["test_labels"], args)
    elif row == "encoder-told-snr":
        cat, head = ctx["reference_model"](seed)
        correct = score(cat, head, ctx["test_feats"](), ctx["test_labels"], args, told=True)
    else:
        fit = ctx["pools"]["small" if row in SMALL else "all"]
        student, test_feats = bundle.student, ctx["test_feats"]()
        targets = (ctx["z_t"][fit], ctx["l_t"][fit], ctx["labels"][fit])  # teacher's, labels
        if row in STAGE1_WEIGHTS:
            images = ctx["train"].images[fit]
            student, secs = train_student(bundle, STAGE1_WEIGHTS[row], images, *targets, args)
            feats = features(student, images, bundle.norm)
            test_feats = features(student, ctx["test"].images, bundle.norm)
        else:
            feats = ctx["pool_feats"]("small" if row in SMALL else "all")
        cat, head, s = train_codec(row, cfg, s2, student.head, feats, *targets, args, seed)
        secs += s
        Path(args.work).mkdir(parents=True, exist_ok=True)
        save_file(cpu_state(cat), str(Path(args.work) / f"{row}_seed{seed}.cat.safetensors"))
        save_file(cpu_state(head), str(Path(args.work) / f"{row}_seed{seed}.head.safetensors"))
        correct = score(cat, head, test_feats, ctx["test_labels"], args)
    np.savez(done, seconds=secs, **correct)
    return {"correct": correct, "seconds": secs}


def summarise(results: dict, args) -> list[dict]:
    """JSON rows: per point accuracy, ci95 (seed 0), p vs the comparison row (seed 0), and over
    seeds the mean and spread when a row has several."""
    out = []
    for row, by_seed in results.items():
        what, versus = ROWS[row]
        seeds = sorted(by_seed)
        first = by_seed[seeds[0]]["correct"]
        pts = []
        for key, c in first.items():
            ch, s = key.rsplit("_", 1)
            p = {"channel": ch, "snr_db": float(s), "accuracy": float(c.mean())}
            p["ci95"] = stats.wilson(int(c.sum()), len(c))
            if versus is not None and versus in results:
                ref = results[versus][min(results[versus])]["correct"][key]
                p["p_vs"] = stats.mcnemar_p(ref, c)
            if len(seeds) > 1:
                accs = [float(by_seed[sd]["correct"][key].mean()) for sd in seeds]
                p["seed_accuracies"] = accs
                p["seed_mean"] = float(np.mean(accs))
                p["seed_std"] = float(np.std(accs, ddof=1))
            pts.append(p)
        train_s = [round(by_seed[sd]["seconds"], 1) for sd in seeds]
        row_info = {"row": row, "changes": what, "vs": versus, "seeds": seeds}
        out.append({**row_info, "train_seconds": train_s, "points": pts})
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default="default")
    ap.add_argument("--store", default="cache/feature_store", help="teacher feature-store root")
    ap.add_argument("--work", required=True, help="folder for finished rows (resume)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--seeds", default="0,1,2", help=f"training seeds of row {SEEDED}")
    ap.add_argument("--reference-seeds", default="0", help="training seeds of row reference")
    ap.add_argument("--steps", type=int, default=600, help="stage-2 steps of every codec row")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--stage1-epochs", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=12000, help="pool of the SMALL rows")
    ap.add_argument("--train-limit", type=int, default=None, help="training images (tests)")
    ap.add_argument("--n", type=int, default=10000, help="test images")
    ap.add_argument("--rate", type=int, default=16)
    ap.add_argument("--snr", default="-10,0,10")
    ap.add_argument("--seed", type=int, default=0, help="channel-draw seed of the evaluation")
    args = ap.parse_args()
    args.snrs = [float(s) for s in args.snr.split(",")]
    for r in args.rows.split(","):
        if r not in ROWS:
            raise SystemExit(f"unknown row {r!r} (choose from {', '.join(ROWS)})")
    return args


def load_context(bundle, args: argparse.Namespace, rows: list[str]) -> dict:
    """What every row trains and scores on: the bundle's stage-2 config, the training images
    stage 2 fits on (`pools`: all of them, and the smaller class-balanced pool), the test images,
    teacher targets and the bundle student's features, computed when a row first needs them
    (cached in --work for a resumed run). Sets `args.run_cfg`."""
    from rkdsc_core.config import Config, merge

    run_cfg = bundle.manifest.get("provenance", {}).get("config")
    args.run_cfg = merge(Config(), run_cfg) if run_cfg else Config()
    s2 = args.run_cfg.stage2
    name = bundle.manifest["dataset"]["name"]
    train = load_dataset(name, "train", limit=args.train_limit)
    test = load_dataset(name, "test", limit=args.n)
    fit, _ = validation_split(  # stage 2's training images (its validation images left out)
        train.labels, args.run_cfg.data.val_fraction, args.run_cfg.seed, limit=s2.val_limit
    )
    small = fit[balanced_subset(train.labels[fit], min(args.train_images, len(fit)))]
    z_t, l_t = teacher_targets(bundle, train, args.store)
    ctx = {
        "bundle": bundle,
        "s2": s2,
        "cat_cfg": CATConfig.from_dict(bundle.manifest["cat"]["spec"]),
        "train": train,
        "test": test,
        "pools": {"all": fit, "small": small},  # a class-balanced part of stage 2's images
        "z_t": z_t,
        "l_t": l_t,
        "labels": torch.from_numpy(train.labels.astype(np.int64)),
        "test_labels": test.labels,
    }

    def cached(name: str, images: np.ndarray) -> torch.Tensor:
        """The bundle student's features of `images`, kept in --work for a resumed run."""
        path = Path(args.work) / f"student_features_{name}.safetensors"
        if path.exists():
            return load_file(str(path))["x"]
        x = features(bundle.student, images, bundle.norm)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"x": x}, str(path))
        return x

    ctx["pool_feats"] = lambda pool: cached(
        f"train{len(ctx['pools'][pool])}", train.images[ctx["pools"][pool]]
    )
    ctx["test_feats"] = lambda: cached(f"test{len(test)}", test.images)
    return ctx


def reference_model(seed: int, ctx: dict, args: argparse.Namespace):
    """(cat, head) of the reference row at `seed`, trained first when --work has none."""
    if not (Path(args.work) / f"reference_seed{seed}.npz").exists():
        run_row("reference", seed, ctx, args)
    cat = make_codec("reference", ctx["cat_cfg"])
    head = torch.nn.Linear(ctx["cat_cfg"].feature_dim, len(ctx["bundle"].classes))
    for m, part in ((cat, "cat"), (head, "head")):
        m.load_state_dict(
            load_file(str(Path(args.work) / f"reference_seed{seed}.{part}.safetensors"))
        )
    return cat.eval(), head.eval()


def report(args: argparse.Namespace, ctx: dict, seeds: list[int], results: dict, t0: float):
    return {
        "bundle": args.bundle,
        "dataset": ctx["bundle"].manifest["dataset"]["name"],
        "split": "test",
        "n": len(ctx["test"]),
        "rate": args.rate,
        "encoder_snr": "unknown (as every evaluation) except row encoder-told-snr",
        "budget": {
            "stage2_steps": args.steps,
            "stage2_batch": args.batch,
            "stage2_train_images": len(ctx["pools"]["all"]),
            "stage2_train_images_small": len(ctx["pools"]["small"]),
            "small_pool_rows": list(SMALL),
            "stage2_recipe": "the bundle's stage-2 loss, channel mix, SNR-hiding share and lr "
            "(one-cycle over the steps), AdamW, grad clip 5, from scratch, last step kept",
            "stage1_epochs": args.stage1_epochs,
            "stage1_images": len(ctx["pools"]["small"]),
            "stage1_recipe": "the bundle's stage-1 batch, lr and weight decay, one-cycle, clean "
            "images (no augmentation) with clean teacher targets, student seed 0",
            "seeds": {
                SEEDED: seeds,
                "reference": [int(x) for x in args.reference_seeds.split(",")],
            },
        },
        "rows": summarise(results, args),
        "statistics": {
            "ci95": stats.INTERVAL + " (first seed)",
            "p_vs": stats.TEST + ", against the row named in `vs` (first seeds)",
            "seed_std": "sample standard deviation over the training seeds",
            "channel_draws": "keyed by (seed, channel, SNR, image index), as every method",
        },
        "seconds": round(time.time() - t0, 1),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "provenance": provenance(
            config={k: v for k, v in vars(args).items() if k not in ("run_cfg", "snrs")},
            seed=seeds[0],
        ),
    }


def main() -> None:
    args = parse_args()
    rows = args.rows.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    ref_seeds = [int(s) for s in args.reference_seeds.split(",")]
    if ref_seeds[0] != seeds[0]:
        raise SystemExit("--reference-seeds must start with the first of --seeds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(1)
    t0 = time.time()
    ctx = load_context(load_bundle(args.bundle), args, rows)
    ctx["reference_model"] = functools.partial(reference_model, ctx=ctx, args=args)
    results: dict = {}
    jobs = [(row, seeds[0]) for row in rows]  # every row first, then the extra seeds
    jobs += [(SEEDED, sd) for sd in seeds[1:] if SEEDED in rows]
    jobs += [("reference", sd) for sd in ref_seeds if "reference" in rows and sd != seeds[0]]
    for row, seed in jobs:
        log.info("row %s seed %d", row, seed)
        results.setdefault(row, {})[seed] = run_row(row, seed, ctx, args)
    rep = report(args, ctx, seeds, results, t0)
    write_json(args.json, rep)
    print(json.dumps({r["row"]: [p["accuracy"] for p in r["points"]] for r in rep["rows"]}))


if __name__ == "__main__":
    main()
