"""`rkdsc demo`: Fashion-MNIST test images with the default bundle through the GNU Radio waveform
flowgraph (framing, RRC, mild impairments, sync, equalisation, estimated SNR) over AWGN and
Rayleigh, next to the offline evaluation at the same SNRs; a table, `demo.json` and `demo.png`.
The GNU Radio column is the delivered accuracy: correct decisions ÷ images sent (an image whose
frame was lost counts as wrong)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rkdsc_core.bundle import bundle_ref
from rkdsc_core.data.subsets import selection_record
from rkdsc_core.eval.harness import clean_accuracy, snr_sweep
from rkdsc_core.eval.report import save_accuracy_plot
from rkdsc_core.eval.stats import finish
from rkdsc_core.provenance import provenance
from rkdsc_core.runtime import load_bundle
from rkdsc_gr.loopback_report import LoopbackRequest
from rkdsc_gr.ota_loopback import run_waveform_loopback

log = logging.getLogger(__name__)

SNRS = (-5.0, 0.0, 5.0, 10.0, 20.0)
# (waveform channel, offline channel): the waveform path has no block fading, so Rayleigh runs as
# slow time-varying fading (fd·Ts = 1e-5 per symbol: 0.04 cycles over a 64-image frame of 3,832
# symbols, near-constant within it, a new draw every few frames) with pilots.
CHANNELS = (("awgn", "awgn"), ("rayleigh_fast", "rayleigh"))
RAYLEIGH_FD_TS = 1e-5
# Mild impairments for the demo (the PHY acceptance test uses harsher ones).
MILD = {"cfo": 2e-4, "sco_ppm": 10.0, "taps": (1.0, 0.2j, 0.05)}
#: images per frame: preamble and header (~2,700 symbol periods) shared by 64 images
IMAGES_PER_FRAME = 64


def run_demo(
    bundle: str = "default",
    quick: bool = False,
    n: int | None = None,
    rate: int = 16,
    seed: int = 0,
    out_dir: str = "results",
    images_per_frame: int = IMAGES_PER_FRAME,
    data_root: str | None = None,
) -> dict:
    """Run the demo and return its report (also written to `<out_dir>/demo.json` / `.png`): the
    bundle's test images (`n` of them, the class-balanced subset `rkdsc eval --n` scores; from
    `data_root` for CIFAR / ImageFolder bundles)."""
    n = n or (100 if quick else 500)
    snrs = (0.0, 10.0) if quick else SNRS
    t0 = time.time()
    bun = load_bundle(bundle)
    data = bun.dataset.load("test", data_root, n)
    clean = clean_accuracy(bun, data)
    rows, curves = [], {}
    for ch, offline_ch in CHANNELS:
        print(
            f"[demo] {ch}: GNU Radio waveform loopback, {n} images x {len(snrs)} SNRs ...",
            flush=True,
        )
        req = LoopbackRequest(
            bundle, ch, tuple(snrs), rate, n, data_root=data_root, seed=seed, fd_ts=RAYLEIGH_FD_TS
        )
        gr_rep = run_waveform_loopback(req, images_per_frame=images_per_frame, **MILD)
        offline = finish(snr_sweep(bun, data, offline_ch, snrs, rate, seed))
        curves[ch] = {"gnuradio": gr_rep["points"], "offline": offline}
        for g, o in zip(gr_rep["points"], offline):
            rows.append(
                {
                    "channel": ch,
                    "snr_db": g["snr_db"],
                    "delivered_gnuradio": g["delivered_accuracy"],
                    "accuracy_gnuradio": g["accuracy"],
                    "accuracy_offline": o["accuracy"],
                    "frames_sent": g["frames_sent"],
                    "frames_detected": g["frames_detected"],
                    "channel_uses_per_image": g["channel_uses_per_image"],
                    "snr_est_db": g.get("snr_est_db"),
                }
            )
    rep = {
        "bundle": bundle_ref(bun.path),
        "dataset": bun.manifest["dataset"]["name"],
        "split": "test",
        "n": n,
        "images": selection_record(data.index, data.labels, data.total),
        "rate": rate,
        "phy": "waveform",
        "images_per_frame": images_per_frame,
        "impairments": {k: (list(map(str, v)) if k == "taps" else v) for k, v in MILD.items()},
        "clean_accuracy": clean["clean_accuracy"],
        "teacher_accuracy": clean["teacher_accuracy"],
        "rows": rows,
        "curves": curves,
        "seconds": round(time.time() - t0, 1),
        "provenance": provenance(
            config={"quick": quick, "snrs": list(snrs), "images_per_frame": images_per_frame},
            seed=seed,
        ),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(rep, indent=2))
    plot_demo(rep, out / "demo.png")
    return rep


def plot_demo(rep: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for ch, color in zip(rep["curves"], ("tab:blue", "tab:red")):
        c = rep["curves"][ch]
        ax.plot(
            [p["snr_db"] for p in c["gnuradio"]],
            [p["delivered_accuracy"] for p in c["gnuradio"]],
            "o-",
            c=color,
            label=f"{ch}: GNU Radio waveform (delivered)",
        )
        ax.plot(
            [p["snr_db"] for p in c["offline"]],
            [p["accuracy"] for p in c["offline"]],
            "x--",
            c=color,
            alpha=0.6,
            label=f"{ch}: offline (PyTorch)",
        )
    ax.axhline(rep["clean_accuracy"], ls=":", c="grey", label="student, no channel")
    ax.axhline(rep["teacher_accuracy"], ls="-.", c="k", lw=1, label="teacher, no channel")
    title = f"RKD-SC demo: {rep['dataset']}, K={rep['rate']}, n={rep['n']}"
    return save_accuracy_plot(fig, ax, title, path)


def format_table(rep: dict) -> str:
    lines = [
        f"RKD-SC demo — {rep['dataset']} test, n={rep['n']}, K={rep['rate']} symbols/image",
        f"clean accuracy: student {rep['clean_accuracy']:.4f}, teacher "
        f"{rep['teacher_accuracy']:.4f}",
        f"GNU Radio: {rep['images_per_frame']} images per frame; 'delivered' counts every image "
        "sent (a lost frame's images are wrong), 'arrived' only those decoded",
        f"{'channel':<15}{'SNR dB':>7}{'delivered':>10}{'arrived':>9}{'offline':>9}{'frames':>11}"
        f"{'ch. uses':>9}{'est. SNR':>9}",
    ]
    for r in rep["rows"]:
        est = "-" if r["snr_est_db"] is None else f"{r['snr_est_db']:.1f}"
        acc = "-" if r["accuracy_gnuradio"] is None else f"{r['accuracy_gnuradio']:.4f}"
        uses = r["channel_uses_per_image"]
        lines.append(
            f"{r['channel']:<15}{r['snr_db']:>7g}{r['delivered_gnuradio']:>10.4f}{acc:>9}"
            f"{r['accuracy_offline']:>9.4f}{r['frames_detected']:>5}/{r['frames_sent']:<5}"
            f"{'-' if uses is None else f'{uses:.0f}':>9}{est:>9}"
        )
    lines.append(f"({rep['seconds']} s)")
    return "\n".join(lines)
