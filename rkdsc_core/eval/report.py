"""`rkdsc eval`: run the requested measurements and write the JSON of DESIGN.md §5 and plots."""

from __future__ import annotations

import logging
from pathlib import Path

from rkdsc_core.bundle import bundle_ref
from rkdsc_core.data.subsets import selection_record
from rkdsc_core.errors import RkdscError
from rkdsc_core.eval import stats
from rkdsc_core.eval.harness import clean_accuracy, rate_sweep, snr_sweep
from rkdsc_core.eval.sizes import baseline_sizes, link_sizes, model_flops
from rkdsc_core.outputs import write_json
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import Bundle, load_bundle

log = logging.getLogger(__name__)

BASELINE_TRAIN_IMAGES = 5000  # training images that fit the baselines' PCA / quantisers


def run_eval(args, code_factory=None) -> dict:
    """Measure what `args` asks for; returns the report dict (also written to --json).

    `code_factory` builds the channel codes of the digital baselines (`make_code(kind, **kw)`);
    the GNU Radio side supplies it (`rkdsc_gr.digital_baselines.make_code`, passed in by the
    `rkdsc` command), so this package never imports gnuradio.fec."""
    baseline_names(args.baselines)  # a misspelt baseline fails before any measurement
    bundle = load_bundle(args.bundle)
    ds = bundle.dataset.name
    data = bundle.dataset.load(args.split, args.data_root, args.n)  # checked against the bundle
    rates = args.rate or [16 if 16 in bundle.rates else bundle.rates[0]]
    channels = args.channel or ([] if args.clean else ["awgn"])
    rep: dict = {
        "bundle": bundle_ref(bundle.path),
        "dataset": ds,
        "split": args.split,
        "n": len(data),
        "images": selection_record(data.index, data.labels, data.total),
        "channel": channels[0] if channels else None,
        "rate": rates[0],
    }
    if args.clean or channels:
        clean = clean_accuracy(bundle, data)
        rep.update(clean)
        if args.clean:
            flops = model_flops(bundle)
            rep.update(flops)
            rep.update(link_sizes(bundle, flops))
            rep["baseline_sizes"] = baseline_sizes(bundle)
    baselines = (
        run_baseline_set(bundle, data, args, channels, rates, rep, code_factory)
        if args.baselines
        else {}
    )
    curves = []
    for ch in channels:
        for k in rates:
            curves.append(
                {
                    "channel": ch,
                    "rate": k,
                    "points": snr_sweep(bundle, data, ch, args.snr, k, args.seed),
                }
            )
    if curves:
        # the baselines ran on the first channel and rate, the same images and keyed draws
        rep["baselines"] = {n: stats.compare(curves[0]["points"], p) for n, p in baselines.items()}
        rep["comparison"] = stats.summary(rep["baselines"])
        for c in curves:
            c["points"] = stats.finish(c["points"])
        rep["points"] = curves[0]["points"]
        rep["curves"] = curves
        rep["statistics"] = {
            "ci95": stats.INTERVAL,
            "p_vs_rkdsc": stats.TEST,
            "alpha": stats.ALPHA,
            "channel_draws": "keyed by (seed, channel, SNR, image index); K takes a prefix",
        }
    if args.rate_snr is not None:
        rep["rate_curves"] = [
            {
                "channel": ch,
                "snr_db": args.rate_snr,
                "points": stats.finish(
                    rate_sweep(bundle, data, ch, args.rate_snr, bundle.rates, args.seed)
                ),
            }
            for ch in channels or ["awgn"]
        ]
    rep["provenance"] = provenance(
        config={"bundle_provenance": bundle.manifest.get("provenance", {}).get("git_sha")},
        seed=args.seed,
    )
    if args.json:
        write_json(args.json, rep)
    if args.plot and curves:
        plot_curves(rep, args.plot)
    return rep


def baseline_names(arg: str | None) -> tuple[str, ...]:
    """`--baselines` value ("all" or a comma-separated list) → names; one-line error on a typo."""
    from rkdsc_core.eval import baselines as bl

    if not arg:
        return ()
    names = bl.ALL if arg == "all" else tuple(n.strip() for n in arg.split(",") if n.strip())
    for name in names:
        if name not in bl.KNOWN:
            raise RkdscError(f"unknown baseline '{name}' (choose from {', '.join(bl.KNOWN)}, all)")
    return names


def run_baseline_set(
    bundle: Bundle, data, args, channels, rates, rep: dict, code_factory=None
) -> dict:
    """Baselines of issue 11 on the first channel and rate; fills rep["baseline_info"] and
    returns {name: [{"snr_db", "accuracy"}]}. The gr-fec codes come from `code_factory`."""
    from rkdsc_core.eval import baselines as bl

    names = baseline_names(args.baselines)
    if code_factory is None and any(n in bl.DIGITAL for n in names):
        raise RkdscError("digital baselines need a channel-code factory from GNU Radio (gr-fec)")
    if not channels:
        raise RkdscError("--baselines needs a --channel")
    train = bundle.dataset.load("train", args.data_root).subset(BASELINE_TRAIN_IMAGES)
    curves, info = bl.run_baselines(
        bundle,
        data,
        train,
        channels[0],
        args.snr,
        rates[0],
        list(names),
        code_factory,
        args.seed,
        accuracy_at_tx=rep.get("clean_accuracy"),
    )
    info["_scope"] = {"channel": channels[0], "rate": rates[0], "train_images": len(train)}
    rep["baseline_info"] = info
    return curves


def plot_curves(rep: dict, path: str) -> Path:
    """Accuracy vs SNR, one line per (channel, rate), clean accuracy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in rep["curves"]:
        ax.plot(
            [p["snr_db"] for p in c["points"]],
            [p["accuracy"] for p in c["points"]],
            marker="o",
            ms=3,
            label=f"RKD-SC {c['channel']} K={c['rate']}",
        )
    info = rep.get("baseline_info", {})
    for name, pts in rep.get("baselines", {}).items():
        uses = info.get(name, {}).get("channel_uses")
        label = f"{name} ({uses:.0f} ch. uses)" if uses is not None else name
        thr = info.get(name, {}).get("snr_db_threshold")
        label = f"{name} (label at {thr:.1f} dB)" if thr is not None else label
        style = {"ls": "--", "c": "k", "lw": 0.8} if name == "capacity-bound" else {"ls": ":"}
        ax.plot(
            [p["snr_db"] for p in pts],
            [p["accuracy"] for p in pts],
            marker=None if name == "capacity-bound" else "x",
            ms=3,
            label=label,
            **style,
        )
    if "clean_accuracy" in rep:
        ax.axhline(rep["clean_accuracy"], ls="--", c="grey", lw=1, label="student, no channel")
    if "teacher_accuracy" in rep:
        ax.axhline(rep["teacher_accuracy"], ls="-.", c="k", lw=1, label="teacher, no channel")
    title = f"{rep['dataset']} {rep['split']}, n={rep['n']}, {rep.get('channel')}"
    return save_accuracy_plot(fig, ax, title, path)


def save_accuracy_plot(fig, ax, title: str, path: str | Path) -> Path:
    """Label an accuracy-vs-SNR axis the one way (axes, grid, legend), write the PNG, close."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("SNR (Es/N0, dB)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def print_report(rep: dict) -> None:
    """Human-readable summary on stdout (the CLI's job)."""
    for key in (
        "clean_accuracy",
        "teacher_accuracy",
        "student_params",
        "teacher_params",
        "cat_params",
        "head_params",
        "transmitter_params",
        "receiver_params",
        "transmitter_flops",
        "receiver_flops",
    ):
        if key in rep:
            print(f"{key:>18}: {rep[key]:.4f}" if "accuracy" in key else f"{key:>18}: {rep[key]}")
    if "transmitter_param_ratio" in rep:
        print(f"{'transmitter/teacher':>18}: {rep['transmitter_param_ratio']:.4f} (params)")
    for c in rep.get("curves", []):
        print(
            f"{c['channel']} K={c['rate']}: "
            + "  ".join(f"{p['snr_db']:g}dB {p['accuracy']:.3f}" for p in c["points"])
        )
    for name, pts in rep.get("baselines", {}).items():
        uses = rep.get("baseline_info", {}).get(name, {}).get("channel_uses")
        print(
            f"{name}{f' ({uses:.0f} uses)' if uses is not None else ''}: "
            + "  ".join(f"{p['snr_db']:g}dB {p['accuracy']:.3f}" for p in pts)
        )
    for name, text in rep.get("comparison", {}).items():
        print(f"vs {name}: {text}")
    for c in rep.get("rate_curves", []):
        print(
            f"{c['channel']} at {c['snr_db']:g} dB: "
            + "  ".join(f"K={p['rate']} {p['accuracy']:.3f}" for p in c["points"])
        )
