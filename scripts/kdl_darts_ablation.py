"""KDL-DARTS ablation (issue 5): a λ sweep, plain DARTS and a hand-designed CNN, each trained
from scratch by stage-1 KD and scored on the full test split.

    .venv/bin/python scripts/kdl_darts_ablation.py --config rkdsc_train/configs/fmnist.yaml

Every variant lives in `<out_dir>/ablation/<variant>/{search,stage1}` and is reused when its
`metrics.json` exists (so the command can be re-run, or split with `--variants` across processes
and re-run once to collect). The shared protocol (`PROTOCOL`, then any `key=value` given here) is
shorter than the default pipeline's; it is saved with the results. Writes
`results/kdl_darts_ablation.json` and a markdown table (`.md` beside it, also printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from rkdsc_core.config import Config, load_config, merge, parse_overrides, to_dict
from rkdsc_core.data.datasets import load_configured
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.distill.batches import KDData
from rkdsc_core.nas.genotype import Genotype
from rkdsc_core.nas.reference import HandCNN, hand_cnn_spec
from rkdsc_core.nas.student import student_spec
from rkdsc_core.outputs import write_json
from rkdsc_core.provenance import provenance
from rkdsc_core.seeding import seed_everything
from rkdsc_core.torch_utils import count_params
from rkdsc_train.context import StageContext
from rkdsc_train.stages.search import configure_cpu, search, student_arch
from rkdsc_train.stages.stage1 import teacher_reference, train_student, with_views

log = logging.getLogger("kdl_darts_ablation")

# Shared by every variant: a cheaper search and stage 1 than the shipped default (see README).
# The student width is pinned so the sweep compares cells, not the default's current width.
PROTOCOL = [
    "search.train_limit=8000",
    "search.epochs=3",
    "stage1.epochs=4",
    "stage1.init_channels=10",
    "stage1.stem_stride=2",
]
LAMBDAS = (0.0, 0.1, 0.3, 1.0)


def variants(lambdas: list[float]) -> dict[str, dict]:
    """name → search overrides (None for the hand-designed CNN, which is not searched)."""
    out: dict[str, dict | None] = {f"kdl_darts_l{lam:g}": {"lambda_cost": lam} for lam in lambdas}
    out["plain_darts"] = {"lambda_cost": 0.0, "kd_feature_weight": 0.0, "kd_kl_weight": 0.0}
    out["hand_cnn"] = None
    return out


def variant_config(cfg: Config, name: str, search_delta: dict | None) -> Config:
    return dataclasses.replace(
        cfg,
        out_dir=str(Path(cfg.out_dir) / "ablation" / name),
        search=dataclasses.replace(cfg.search, **(search_delta or {})),
    )


def load_split(cfg: Config, split: str) -> KDData:
    """A split of the main run's dataset with the main run's stored teacher targets."""
    from rkdsc_train.targets import teacher_targets

    arrays = load_configured(cfg.data, split)
    targets = teacher_targets(cfg, split).take(len(arrays))
    data = KDData(arrays, targets, Normalisation.for_dataset(cfg.data.name))
    return with_views(cfg, data) if split == "train" and cfg.stage1.augment else data


def _cached(ctx: StageContext) -> dict | None:
    path = ctx.stage_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def _cached_params(cfg: Config, name: str) -> int | None:
    path = Path(cfg.out_dir) / "ablation" / name / "stage1" / "metrics.json"
    return json.loads(path.read_text())["params"] if path.exists() else None


def hand_cnn_for(params: int, arch: dict) -> dict:
    """The HandCNN spec (widths w, 2w, 4w; two convs per stage) closest to `params` parameters."""
    base = {k: arch[k] for k in ("in_channels", "num_classes", "feature_dim")}
    best = min(
        range(4, 129, 2),
        key=lambda w: abs(count_params(HandCNN(**base, widths=(w, 2 * w, 4 * w))) - params),
    )
    return hand_cnn_spec(**base, widths=(best, 2 * best, 4 * best), depth=2)


def run_variant(cfg: Config, name: str, delta, train, test, teacher, resume, size_ref) -> dict:
    """Search (unless hand-designed) then stage 1; returns the variant's row."""
    vcfg = variant_config(cfg, name, delta)
    row: dict = {"variant": name}
    if delta is None:
        spec = hand_cnn_for(size_ref, student_arch(vcfg, train))
        row.update(lambda_cost=None, kd_in_search=None)
    else:
        ctx = StageContext(vcfg, "search", resume=resume)
        found = _cached(ctx) or search(ctx, train)
        spec = student_spec(Genotype.from_dict(found["genotype"]), **student_arch(vcfg, train))
        row.update(
            lambda_cost=vcfg.search.lambda_cost,
            kd_in_search=vcfg.search.kd_feature_weight > 0 or vcfg.search.kd_kl_weight > 0,
            search_seconds=round(found["search_seconds"], 1),
            expected_cost_final=found["expected_cost_per_epoch"][-1],
            genotype=found["genotype"],
        )
    ctx = StageContext(vcfg, "stage1", resume=resume)
    m = _cached(ctx) or train_student(ctx, spec, train, test, teacher)
    row.update(
        params=m["params"],
        flops=m["flops"],
        test_accuracy=m["test_accuracy"],
        accuracy_ratio=m.get("accuracy_ratio"),
        param_ratio=m.get("param_ratio"),
        stage1_seconds=round(m["train_seconds"], 1),
        student_spec_kind=spec["kind"],
    )
    return row


def markdown(rows: list[dict], teacher: dict) -> str:
    head = "| variant | λ | KD in search | params | % teacher | MFLOPs | test acc | % teacher acc |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lam = "—" if r.get("lambda_cost") is None else f"{r['lambda_cost']:g}"
        kd = {None: "—", True: "yes", False: "no"}[r.get("kd_in_search")]
        pr = f"{100 * r['param_ratio']:.2f}" if r.get("param_ratio") else "—"
        ar = f"{100 * r['accuracy_ratio']:.1f}" if r.get("accuracy_ratio") else "—"
        lines.append(
            f"| {r['variant']} | {lam} | {kd} | {r['params']:,} | {pr} | "
            f"{r['flops'] / 1e6:.2f} | {r['test_accuracy']:.4f} | {ar} |"
        )
    if teacher:
        lines.append(
            f"\nTeacher: {teacher.get('params', 0):,} params, test accuracy "
            f"{teacher.get('test_accuracy', float('nan')):.4f}."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS))
    ap.add_argument("--variants", nargs="+", help="run only these variants (default: all)")
    ap.add_argument("--out", default="results/kdl_darts_ablation.json")
    ap.add_argument("--resume", action="store_true", help="continue interrupted variants")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = merge(load_config(args.config), parse_overrides(PROTOCOL))
    cfg = merge(cfg, parse_overrides(args.overrides))
    configure_cpu(cfg.search.num_threads)
    seed_everything(cfg.seed)
    if 0.0 not in args.lambdas or len(args.lambdas) < 3:
        log.warning("the ablation asks for at least three λ values including 0")
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    teacher = teacher_reference(Path(cfg.out_dir))
    table = variants(args.lambdas)
    ref = f"kdl_darts_l{cfg.search.lambda_cost:g}"
    ref = ref if ref in table else f"kdl_darts_l{sorted(args.lambdas)[len(args.lambdas) // 2]:g}"
    rows: dict[str, dict] = {}
    for name, delta in table.items():  # the hand CNN comes last: it is sized on `ref`
        if args.variants and name not in args.variants:
            continue
        size_ref = rows[ref]["params"] if ref in rows else _cached_params(cfg, ref)
        if delta is None and size_ref is None:
            log.error("hand_cnn is sized on %s: run that variant first", ref)
            continue
        seed_everything(cfg.seed)
        rows[name] = run_variant(cfg, name, delta, train, test, teacher, args.resume, size_ref)
        log.info("%s: %s", name, {k: v for k, v in rows[name].items() if k != "genotype"})
    write_results(args, cfg, list(rows.values()), teacher, ref)
    return 0


def write_results(args, cfg: Config, rows: list[dict], teacher: dict, ref: str) -> None:
    kd_rows = sorted((r for r in rows if r.get("kd_in_search")), key=lambda r: r["lambda_cost"])
    params = [r["params"] for r in kd_rows]
    default_path = Path(cfg.out_dir) / "stage1" / "metrics.json"
    default = json.loads(default_path.read_text()) if default_path.exists() else None
    result = {
        "protocol": PROTOCOL + list(args.overrides),
        "lambdas": args.lambdas,
        "teacher": teacher,
        "size_reference": ref,
        "params_fall_as_lambda_rises": all(a >= b for a, b in zip(params, params[1:])),
        "variants": rows,
        "default_student": None
        if default is None
        else {k: default.get(k) for k in ("params", "flops", "test_accuracy", "accuracy_ratio")},
        "provenance": provenance(to_dict(cfg), cfg.seed),
    }
    out = write_json(args.out, result)
    table = markdown(rows, teacher)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    sys.exit(main())
