"""Markdown tables for the README from `rkdsc eval --baselines` JSON (issue 19): accuracy with its
95% Wilson interval for RKD-SC, each baseline marked by the paired exact McNemar test against
RKD-SC at 5%, and the wins / ties / losses sentences the JSON carries (generated from the tests).

Usage: python scripts/results_tables.py results/baselines/baselines_awgn_k16.json [--snr -10,0,10]
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
            measured = "ci95" in p
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--snr", default=None, help="columns, e.g. -10,-6,0,10")
    ap.add_argument("--readme", default=None, help=f"replace the text between {START} and {END}")
    args = ap.parse_args()
    snrs = [float(s) for s in args.snr.split(",")] if args.snr else None
    text = markdown(args.json, snrs)
    if args.readme is None:
        print(text)
        return
    readme = Path(args.readme).read_text()
    i, j = readme.index(START) + len(START), readme.index(END)
    Path(args.readme).write_text(readme[:i] + "\n" + text + "\n" + readme[j:])


if __name__ == "__main__":
    main()
