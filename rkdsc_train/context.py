"""What every stage receives: the resolved config, its folder, resume flag, device and checkpoints.

Checkpoints are written atomically every epoch (`torch.save` of tensors and plain data) and read
back with `torch.load(weights_only=True)`, so killing a stage loses at most one epoch. Under
torchrun only rank 0 writes (config, checkpoints, JSON); every rank reads them
(`rkdsc_core.distributed`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rkdsc_core import distributed
from rkdsc_core.config import Config, save_config
from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` | `cpu` | `cuda[:i]`; under torchrun a bare `cuda` / `auto` is this rank's GPU
    (LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RkdscError(f"device '{name}' asked for but CUDA is not available (use device=cpu)")
    if name == "cuda" and distributed.env_world_size() > 1:
        return torch.device("cuda", distributed.env_local_rank())
    return torch.device(name)


@dataclass
class StageContext:
    """Per-stage handle: `stage_dir = run_dir / name`, checkpoint and metrics helpers."""

    cfg: Config
    name: str
    resume: bool = False
    run_dir: Path = field(init=False)
    stage_dir: Path = field(init=False)
    device: torch.device = field(init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.cfg.out_dir)
        self.stage_dir = self.run_dir / self.name
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(self.cfg.device)
        if self.is_main:
            save_config(self.cfg, self.stage_dir / "config.yaml")

    @property
    def is_main(self) -> bool:
        """Rank 0 (or the only process): the one that writes files."""
        return distributed.is_main()

    @property
    def checkpoint_path(self) -> Path:
        return self.stage_dir / "checkpoint.pt"

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically replace the stage checkpoint with `state` (tensors, numbers, strings); rank 0
        only (every rank holds the same state)."""
        if not self.is_main:
            return
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint when resuming, else None."""
        if not self.resume or not self.checkpoint_path.exists():
            return None
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file: say which, keep the file
            raise RkdscError(f"cannot read checkpoint {self.checkpoint_path}: {exc}") from None
        log.info(
            "%s: resuming from %s (epoch %s)", self.name, self.checkpoint_path, state.get("epoch")
        )
        return state

    def write_json(self, name: str, data: dict) -> Path:
        """Write `data` as `stage_dir/name` (rank 0 only); returns the path."""
        path = self.stage_dir / name
        if not self.is_main:
            return path
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
        return path

    def done_marker(self) -> Path:
        return self.stage_dir / "DONE"
