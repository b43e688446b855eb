"""Genotype (PAPER.md §3): the discrete cells found by the search, `derive` from α, YAML, a picture.

A genotype is plain data — op names and input indices — stored as YAML/JSON, never `eval`-ed. It
carries its own list of candidate primitives, so no global op order is assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# One node = its incoming edges, each `(op name, input index)`; inputs 0, 1 are the cell inputs.
Node = tuple[tuple[str, int], ...]
GENOTYPE_VERSION = 1


@dataclass(frozen=True)
class Genotype:
    """Normal and reduction cells: `normal[j]` lists the edges into intermediate node j."""

    primitives: tuple[str, ...]
    normal: tuple[Node, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Node, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for cell_name in ("normal", "reduce"):
            for j, node in enumerate(getattr(self, cell_name)):
                for op, inp in node:
                    if op not in self.primitives:
                        raise ValueError(f"genotype {cell_name}[{j}]: op '{op}' not in primitives")
                    if not 0 <= inp < 2 + j:
                        raise ValueError(f"genotype {cell_name}[{j}]: input {inp} out of range")

    @property
    def nodes(self) -> int:
        return len(self.normal)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested lists/strings/ints (YAML/JSON safe)."""
        return {
            "version": GENOTYPE_VERSION,
            "primitives": list(self.primitives),
            "normal": [[[op, int(i)] for op, i in node] for node in self.normal],
            "normal_concat": [int(i) for i in self.normal_concat],
            "reduce": [[[op, int(i)] for op, i in node] for node in self.reduce],
            "reduce_concat": [int(i) for i in self.reduce_concat],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        """Inverse of `to_dict`; raises ValueError naming a missing or unknown key."""
        keys = {"primitives", "normal", "normal_concat", "reduce", "reduce_concat"}
        missing = keys - set(data)
        if missing:
            raise ValueError(f"genotype is missing key '{sorted(missing)[0]}'")
        extra = set(data) - keys - {"version"}
        if extra:
            raise ValueError(f"genotype has unknown key '{sorted(extra)[0]}'")

        def cell(nodes: Sequence) -> tuple[Node, ...]:
            return tuple(tuple((str(op), int(i)) for op, i in node) for node in nodes)

        return cls(
            primitives=tuple(str(p) for p in data["primitives"]),
            normal=cell(data["normal"]),
            normal_concat=tuple(int(i) for i in data["normal_concat"]),
            reduce=cell(data["reduce"]),
            reduce_concat=tuple(int(i) for i in data["reduce_concat"]),
        )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str) -> Genotype:
        return cls.from_dict(yaml.safe_load(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        return cls.from_yaml(Path(path).read_text())


def derive_cell(
    weights: np.ndarray, primitives: Sequence[str], nodes: int, k: int = 2
) -> tuple[Node, ...]:
    """Discretise one cell: for each node the top-`k` incoming edges ranked by their strongest
    non-`none` op weight, each edge keeping that op. `weights float [E, O]` (softmax rows)."""
    w = np.asarray(weights, dtype=np.float64)
    expected = sum(2 + j for j in range(nodes))
    if w.shape != (expected, len(primitives)):
        raise ValueError(f"weights shape {w.shape} != ({expected}, {len(primitives)})")
    allowed = np.array([p != "none" for p in primitives])
    if not allowed.any():
        raise ValueError("cannot derive a cell from a space of 'none' only")
    masked = np.where(allowed, w, -np.inf)
    out, start = [], 0
    for j in range(nodes):
        rows = masked[start : start + 2 + j]
        best_op = rows.argmax(axis=1)
        strength = rows.max(axis=1)
        # stable sort: ties keep the lower input index
        top = sorted(np.argsort(-strength, kind="stable")[: min(k, 2 + j)])
        out.append(tuple((primitives[best_op[i]], int(i)) for i in top))
        start += 2 + j
    return tuple(out)


def derive(
    alpha_normal: Any, alpha_reduce: Any, primitives: Sequence[str], nodes: int, k: int = 2
) -> Genotype:
    """Pure: α logits (`[E, O]` arrays or tensors) → Genotype. Softmax is taken per edge."""

    def softmax(a: Any) -> np.ndarray:
        a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    concat = tuple(range(2, 2 + nodes))
    return Genotype(
        primitives=tuple(primitives),
        normal=derive_cell(softmax(alpha_normal), primitives, nodes, k),
        normal_concat=concat,
        reduce=derive_cell(softmax(alpha_reduce), primitives, nodes, k),
        reduce_concat=concat,
    )
