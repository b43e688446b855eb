"""Markdown tables for the README from `rkdsc eval --baselines` JSON (issue 19): accuracy with its
95% Wilson interval for RKD-SC, each baseline marked by the paired exact McNemar test against
RKD-SC at 5%, and the wins / ties / losses sentences the JSON carries (generated from the tests).

Usage: python scripts/results_tables.py results/baselines/baselines_awgn_k16.json [--snr -10,0,10]
       python scripts/results_tables.py --ablations results/cat_ablations.json [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MARK = {"win": "▼", "loss": "▲", "tie": ""}  # from RKD-SC's side: ▼ baseline significantly lower


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(rep: dict, snrs: list[float] | None = None) -> str:
    pts = {p["snr_db"]: p for p in rep["points"]}
    snrs = snrs or sorted(pts)
    info = rep.get("baseline_info", {})
    head = "| SNR (dB) | " + " | ".join(f"{s:g}".replace("-", "−") for s in snrs) + " |"
    rows = [head, "|---" * (len(snrs) + 1) + "|"]
    cells = []
    for s in snrs:
        lo, hi = pts[s]["ci95"]
        cells.append(f"{_pct(pts[s]['accuracy'])} ({_pct(lo)}–{_pct(hi)})")
    rows.append("| **RKD-SC** (95% CI) | " + " | ".join(cells) + " |")
    for name, bpts in rep.get("baselines", {}).items():
        by = {p["snr_db"]: p for p in bpts}
        uses = info.get(name, {}).get("channel_uses")
        label = name if uses in (None, rep["rate"]) else f"{name} ({uses:,.0f} ch. uses)"
        cells = []
        for s in snrs:
            p = by.get(s)
            if p is None:
                cells.append("–")
                continue
            mark = MARK.get(p.get("vs_rkdsc", "tie"), "")
            measured = p.get("ci95") is not None
            cells.append(
                f"{_pct(p['accuracy'])}{' ' + mark if mark else ''}{'' if measured else '*'}"
            )
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


START, END = "<!-- results_tables:start -->", "<!-- results_tables:end -->"


def markdown(paths: list[str], snrs: list[float] | None) -> str:
    out = []
    for path in paths:
        rep = json.loads(Path(path).read_text())
        out.append(
            f"Accuracy (%), {rep['channel']}, K = {rep['rate']}, n = {rep['n']} (`{path}`):\n"
        )
        out.append(table(rep, snrs))
        out.append("")
        out += [f"- vs {name}: {text}" for name, text in rep.get("comparison", {}).items()]
        out.append("")
    out.append(
        "▼ / ▲: the baseline is significantly below / above RKD-SC (paired exact McNemar, "
        "p < 0.05); unmarked: no significant difference; *: not measured (analytic, or filled in "
        "at chance below two SNRs where no frame decoded)."
    )
    return "\n".join(out)


ABL_START, ABL_END = "<!-- cat_ablations:start -->", "<!-- cat_ablations:end -->"


def ablation_table(rep: dict) -> str:
    """The CAT's ablations (scripts/cat_ablations.py JSON): accuracy with its ci95 per row and
    point, each row marked by its paired McNemar test against its comparison row, and the
    reference's mean ± sd over its training seeds."""
    rows = rep["rows"]
    keys = [(p["channel"], p["snr_db"]) for p in rows[0]["points"]]
    keys.sort(key=lambda k: (k[0], k[1]))
    name = {"awgn": "AWGN", "rayleigh": "Rayleigh"}
    head = "| row (vs) | " + " | ".join(
        f"{name.get(c, c)} {s:g}".replace("-", "−") for c, s in keys
    )
    out = [head + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        by = {(p["channel"], p["snr_db"]): p for p in r["points"]}
        cells = []
        for k in keys:
            p = by[k]
            lo, hi = p["ci95"]
            cell = f"{_pct(p['accuracy'])} ({_pct(lo)}–{_pct(hi)})"
            if p.get("p_vs") is not None:
                ref = {
                    (q["channel"], q["snr_db"]): q
                    for q in next(x for x in rows if x["row"] == r["vs"])["points"]
                }[k]
                mark = (
                    "" if p["p_vs"] >= 0.05 else ("▲" if p["accuracy"] > ref["accuracy"] else "▼")
                )
                cell += f" p={p['p_vs']:.2g}{' ' + mark if mark else ''}"
            cells.append(cell)
        label = f"{r['row']} (vs {r['vs']})" if r["vs"] else f"**{r['row']}**"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
        if len(r["seeds"]) > 1:
            spread = [f"{_pct(by[k]['seed_mean'])} ± {_pct(by[k]['seed_std'])}" for k in keys]
            out.append(
                f"| {r['row']}, seeds {', '.join(map(str, r['seeds']))}: mean ± sd | "
                + " | ".join(spread)
                + " |"
            )
    b = rep["budget"]
    out.append("")
    out.append(
        f"Test split, n = {rep['n']}, K = {rep['rate']}, encoder not told the SNR (but in "
        f"encoder-told-snr), keyed channel draws; budget per row: {b['stage2_steps']} stage-2 "
        f"steps of {b['stage2_batch']} from scratch on the student features of "
        f"{b['stage2_train_images']:,} training images ({b['stage2_train_images_small']:,} for "
        f"{', '.join(b['small_pool_rows'])}); stage-1 rows: {b['stage1_epochs']} epochs "
        f"on {b['stage1_images']:,} images first. Accuracy (%) with its 95% Wilson interval; "
        "p: paired exact McNemar against the row in brackets; ▲ / ▼: significantly above / "
        "below it at 5%."
    )
    return "\n".join(out)


def _replace(path: str, start: str, end: str, text: str) -> None:
    readme = Path(path).read_text()
    i, j = readme.index(start) + len(start), readme.index(end)
    Path(path).write_text(readme[:i] + "\n" + text + "\n" + readme[j:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="*")
    ap.add_argument("--ablations", default=None, help="scripts/cat_ablations.py JSON: its table")
    ap.add_argument("--snr", default=None, help="columns, e.g. -10,-6,0,10")
    ap.add_argument("--readme", default=None, help=f"replace the text between {START} and {END}")
    args = ap.parse_args()
    snrs = [float(s) for s in args.snr.split(",")] if args.snr else None
    if args.ablations:
        text = ablation_table(json.loads(Path(args.ablations).read_text()))
        if args.readme is None:
            print(text)
        else:
            _replace(args.readme, ABL_START, ABL_END, text)
    if not args.json:
        return
    text = markdown(args.json, snrs)
    if args.readme is None:
        print(text)
        return
    _replace(args.readme, START, END, text)


if __name__ == "__main__":
    main()
