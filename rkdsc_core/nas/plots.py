"""Pictures of a KDL-DARTS search: expected cost, losses and mean softmax(α) per op, per epoch;
the derived genotype's two cells as DAGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rkdsc_core.nas.genotype import Genotype, Node


def plot_search_curves(
    history: list[dict[str, Any]],
    alphas: list[dict[str, Any]],
    primitives: list[str],
    path: str | Path,
) -> Path:
    """Three panels into `path`: E[cost] and losses per epoch; mean op weight (normal, reduce).

    `history` rows hold `epoch`, `expected_cost`, `w_loss`, optional `a_loss`; `alphas` rows hold
    `epoch` and `normal` / `reduce` softmax weights `[E][O]`."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    epochs = [row["epoch"] + 1 for row in history]
    ax = axes[0]
    ax.plot(epochs, [row["expected_cost"] for row in history], "o-", color="C3")
    ax.set_xlabel("epoch")
    ax.set_ylabel("expected cost C(α)", color="C3")
    ax2 = ax.twinx()
    for key, style in (("w_loss", "C0-"), ("a_loss", "C2--")):
        if any(key in row for row in history):
            ax2.plot(epochs, [row.get(key, np.nan) for row in history], style, label=key)
    ax2.set_ylabel("loss")
    ax2.legend(loc="upper right", fontsize=8)
    ax.set_title("cost and loss")
    x = [row["epoch"] + 1 for row in alphas]
    for ax, cell in zip(axes[1:], ("normal", "reduce")):
        mean = np.array([np.asarray(row[cell]).mean(axis=0) for row in alphas])
        for o, name in enumerate(primitives):
            ax.plot(x, mean[:, o], label=name)
        ax.set_xlabel("epoch (0 = initial)")
        ax.set_ylabel("mean softmax(α) over edges")
        ax.set_title(f"{cell} cell")
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_genotype(genotype: Genotype, path: str | Path) -> Path:
    """Draw both cells as DAGs (inputs c_{k-2}, c_{k-1}, nodes 0…n−1, output) into `path`."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (title, cell) in zip(
        axes, (("normal cell", genotype.normal), ("reduction cell", genotype.reduce))
    ):
        _draw_cell(ax, cell, title)
    return _save(fig, path)


def _draw_cell(ax: Any, cell: tuple[Node, ...], title: str) -> None:
    n = len(cell)
    pos = {0: (-0.8, 1.5), 1: (-0.8, -1.5)}
    for j in range(n):
        pos[2 + j] = (1.0 + j, 0.7 * (-1) ** j)
    pos["out"] = (n + 1.0, 0.0)
    labels = {0: "c_{k-2}", 1: "c_{k-1}", **{2 + j: str(j) for j in range(n)}, "out": "c_{k}"}
    for j, node in enumerate(cell):
        for k, (op, i) in enumerate(node):
            (x0, y0), (x1, y1) = pos[i], pos[2 + j]
            rad = 0.25 if k % 2 else -0.25  # bend the two inputs of a node apart
            ax.annotate(
                "",
                (x1, y1),
                (x0, y0),
                arrowprops=dict(arrowstyle="->", color="0.3", connectionstyle=f"arc3,rad={rad}"),
            )
            # label at 60% of the way along the bent edge, offset like the bend
            t, dx, dy = 0.5, x1 - x0, y1 - y0
            lx, ly = x0 + t * dx + 0.5 * rad * dy, y0 + t * dy - 0.5 * rad * dx
            ax.text(
                lx,
                ly,
                op,
                fontsize=7,
                ha="center",
                va="center",
                bbox=dict(fc="white", ec="none", alpha=0.8),
            )
        ax.annotate("", pos["out"], pos[2 + j], arrowprops=dict(arrowstyle="->", color="0.75"))
    for key, (x, y) in pos.items():
        color = "lightblue" if key in (0, 1) else ("palegreen" if key == "out" else "khaki")
        ax.text(
            x,
            y,
            labels[key],
            ha="center",
            va="center",
            fontsize=9,
            bbox=dict(boxstyle="round", fc=color),
        )
    ax.set_xlim(-1.4, n + 1.6)
    ax.set_ylim(-2.0, 2.0)
    ax.set_title(title)
    ax.axis("off")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    """Lay out, write (110 dpi) and close `fig`; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
