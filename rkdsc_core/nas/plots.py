"""Pictures of a KDL-DARTS search: expected cost, losses and mean softmax(α) per op, per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_search_curves(
    history: list[dict[str, Any]],
    alphas: list[dict[str, Any]],
    primitives: list[str],
    path: str | Path,
) -> Path:
    """Three panels into `path`: E[cost] and losses per epoch; mean op weight (normal, reduce).

    `history` rows hold `epoch`, `expected_cost`, `w_loss`, optional `a_loss`; `alphas` rows hold
    `epoch` and `normal` / `reduce` softmax weights `[E][O]`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
