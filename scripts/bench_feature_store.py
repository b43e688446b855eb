"""Benchmark (not a test): one KD epoch with the teacher-feature store vs recomputing the teacher.

Both paths run side by side in one process, batch by batch interleaved (so load from other
processes on a shared machine hits both alike), with the same student initialisation, batch order,
stage-1 loss and optimiser; only the source of the teacher targets differs. Teachers: the trained
embedded teacher (`<out_dir>/teacher/teacher.safetensors`, default: the whole training split) and,
unless `--clip-n 0`, the paper's CLIP ViT-B/32 architecture (random weights: timing only) on the
first `--clip-n` images. Writes `results/bench_feature_store.json` with provenance.

    .venv/bin/python scripts/bench_feature_store.py --config rkdsc_train/configs/fmnist.yaml
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin (shared)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from rkdsc_core.config import Config, load_config, to_dict  # noqa: E402
from rkdsc_core.data.datasets import ImageArrays, load_dataset  # noqa: E402
from rkdsc_core.data.feature_store import FeatureStore, StoreEntry, apply_view  # noqa: E402
from rkdsc_core.data.transforms import Normalisation  # noqa: E402
from rkdsc_core.distill.batches import Batch, KDData, StoredViews  # noqa: E402
from rkdsc_core.distill.distiller import Distiller  # noqa: E402
from rkdsc_core.distill.losses import KDWeights  # noqa: E402
from rkdsc_core.models.teacher import Teacher, create_teacher  # noqa: E402
from rkdsc_core.nas.genotype import Genotype  # noqa: E402
from rkdsc_core.nas.student import build_student  # noqa: E402
from rkdsc_core.outputs import write_json
from rkdsc_core.provenance import provenance  # noqa: E402
from rkdsc_core.seeding import seed_everything  # noqa: E402
from rkdsc_train.targets import load_trained_teacher  # noqa: E402

log = logging.getLogger("bench_feature_store")


def student_factory(cfg: Config, in_channels: int, num_classes: int, dim: int):
    """The stage-1 derived student (searched genotype if present, else a stand-in) + its name."""
    path = Path(cfg.out_dir) / "search" / "genotype.yaml"
    if path.exists():
        genotype, source = Genotype.load(path), str(path)
    else:
        from rkdsc_core.testing import TINY_GENOTYPE

        genotype, source = TINY_GENOTYPE, "rkdsc_core.testing.TINY_GENOTYPE (search not run yet)"
    arch = dict(
        in_channels=in_channels,
        num_classes=num_classes,
        feature_dim=dim,
        init_channels=cfg.stage1.init_channels,
        layers=cfg.stage1.layers,
        stem_multiplier=cfg.stage1.stem_multiplier,
    )
    return (lambda: build_student(genotype, **arch)), {"genotype": source, "arch": arch}


def kd_epoch_pair(
    cfg: Config,
    teacher: Teacher,
    entry: StoreEntry,
    data: ImageArrays,
    norm: Normalisation,
    make_student,
    batch_size: int,
    seed: int,
    augment: bool,
    label: str,
) -> dict:
    """Time one stage-1 KD epoch over `data` with stored targets and one recomputing `teacher`.

    With `augment`, every sample goes through a stored view drawn uniformly (as stage 1 does);
    the recomputing path applies the same view and runs the teacher on it."""
    s1 = cfg.stage1
    weights = KDWeights(s1.feature_weight, s1.kl_weight, s1.ce_weight, s1.temperature)
    torch.manual_seed(seed)
    first = make_student()
    distillers = {
        "store": Distiller(first, weights),
        "recompute": Distiller(copy.deepcopy(first), weights),
    }
    opts = {
        k: torch.optim.AdamW(d.parameters(), lr=s1.lr, weight_decay=s1.weight_decay)
        for k, d in distillers.items()
    }
    views = StoredViews(entry.embeddings, entry.logits, entry.views, entry.pad)
    stored = KDData(data, entry.targets(0), norm, views)
    plain = KDData(data, None, norm)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    picks = [rng.integers(0, entry.num_views, len(b)) if augment else None for b in batches]
    seconds = {"store": 0.0, "recompute": 0.0}
    max_diff = 0.0
    teacher.eval()

    def step(kind: str, idx: np.ndarray, view: np.ndarray | None) -> Batch:
        if kind == "store":
            batch = stored.batch(idx, view)
        else:
            b = plain.batch(idx)
            x = b.x if view is None else apply_view(b.x, entry.views[view, idx], entry.pad)
            with torch.no_grad():
                z_t, l_t = teacher(x)
            batch = Batch(x, b.y, z_t, l_t)
        loss = distillers[kind].forward_train(batch)["loss"]
        opts[kind].zero_grad(set_to_none=True)
        loss.backward()
        opts[kind].step()
        return batch

    for i, (idx, view) in enumerate(tqdm(list(zip(batches, picks)), desc=f"KD epochs ({label})")):
        got = {}
        for kind in ("store", "recompute") if i % 2 == 0 else ("recompute", "store"):
            t0 = time.perf_counter()
            got[kind] = step(kind, idx, view)
            seconds[kind] += time.perf_counter() - t0
        if i == 0:  # both paths must see the same images and targets
            a, b = got["store"], got["recompute"]
            max_diff = max(
                float((a.x - b.x).abs().max()),
                float((a.t_feature - b.t_feature).abs().max()),
                float((a.t_logits - b.t_logits).abs().max()),
            )
    return {
        "n": len(data),
        "batches": len(batches),
        "batch_size": batch_size,
        "augment": augment,
        "store_epoch_seconds": seconds["store"],
        "recompute_epoch_seconds": seconds["recompute"],
        "speedup": seconds["recompute"] / seconds["store"],
        "first_batch_max_abs_diff": max_diff,
    }


def bench_teacher(cfg, teacher, data, norm, store_root, views, make_student, args, label) -> dict:
    store = FeatureStore(store_root)
    inputs = (teacher, data.name, data.split, data.images, data.labels, norm, views)
    inputs += (cfg.store.augment_pad, cfg.seed)
    hit = store.lookup(store.make_key(*inputs)) is not None
    t0 = time.perf_counter()
    entry = store.get_or_build(*inputs, batch_size=cfg.store.batch_size)
    build = time.perf_counter() - t0
    augment = views > 1 and cfg.stage1.augment
    out = kd_epoch_pair(
        cfg,
        teacher,
        entry,
        data,
        norm,
        make_student,
        args.batch_size or cfg.stage1.batch_size,
        args.seed,
        augment,
        label,
    )
    saved = out["recompute_epoch_seconds"] - out["store_epoch_seconds"]
    out.update(
        {
            "teacher": teacher.spec.name,
            "teacher_arch": teacher.spec.arch,
            "teacher_params": teacher.num_params(),
            "teacher_input": [teacher.spec.in_chans, teacher.spec.img_size, teacher.spec.img_size],
            "store_views": entry.num_views,
            "store_was_cached": hit,
            "store_build_seconds": None if hit else build,
            "store_entry": str(entry.path),
            "break_even_epochs": None if hit or saved <= 0 else build / saved,
        }
    )
    log.info("%s: %s", label, json.dumps(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="rkdsc_train/configs/fmnist.yaml")
    ap.add_argument("--n", type=int, default=None, help="training images (default: all)")
    ap.add_argument("--clip-n", type=int, default=512, help="images for the CLIP run; 0 skips")
    ap.add_argument("--batch-size", type=int, default=None, help="default: stage1.batch_size")
    ap.add_argument("--threads", type=int, default=None, help="default: stage1.num_threads or 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/bench_feature_store.json")
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(args.config)
    torch.set_num_threads(args.threads or cfg.stage1.num_threads or 2)
    seed_everything(args.seed)
    data = load_dataset(
        cfg.data.name,
        "train",
        cfg.data.root,
        cfg.data.download,
        cfg.data.image_size,
        args.n or cfg.data.train_limit,
    )
    norm = Normalisation.for_dataset(cfg.data.name)
    teacher = load_trained_teacher(cfg)
    make_student, student_info = student_factory(
        cfg, data.images.shape[-1], len(data.classes), teacher.spec.embed_dim
    )
    views = 1 + cfg.store.augmented_views  # the configured entry: stage "store" built it
    runs = {
        "embedded": bench_teacher(
            cfg, teacher, data, norm, cfg.store.root, views, make_student, args, "embedded teacher"
        )
    }
    if args.clip_n:
        clip = create_teacher("clip_vit_b32", len(data.classes), norm)  # architecture only
        make_clip_student, _ = student_factory(
            cfg, data.images.shape[-1], len(data.classes), clip.spec.embed_dim
        )
        with tempfile.TemporaryDirectory(prefix="rkdsc_bench_store_") as tmp:
            runs["clip_vit_b32"] = bench_teacher(  # clean view only: 224 px passes are costly
                cfg,
                clip,
                data.subset(args.clip_n),
                norm,
                tmp,
                1,
                make_clip_student,
                args,
                "CLIP ViT-B/32",
            )
    result = {
        "benchmark": "KD epoch: teacher-feature store vs recomputing the teacher",
        "method": (
            "interleaved batch by batch in one process; same student init, batch order, views, "
            "stage-1 Distiller loss and AdamW; only the source of the teacher targets differs"
        ),
        "student": student_info,
        "student_params": sum(p.numel() for p in make_student().parameters()),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_end": os.getloadavg(),
        "runs": runs,
        "provenance": provenance(
            to_dict(cfg), args.seed, script="scripts/bench_feature_store.py", args=vars(args)
        ),
    }
    out = write_json(args.out, result)
    for name, r in runs.items():
        print(
            f"{name}: store {r['store_epoch_seconds']:.1f} s, recompute "
            f"{r['recompute_epoch_seconds']:.1f} s per KD epoch over {r['n']} images "
            f"-> {r['speedup']:.2f}x"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
