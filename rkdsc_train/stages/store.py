"""Stage "store": fill the teacher-feature store (PAPER.md §2) for the train and test splits.

Train gets 1 + `store.augmented_views` views, test the clean view only. Entries already present
for the same key are reused. Writes `store.json` (entries, shapes, timings) into the stage folder.
"""

from __future__ import annotations

import logging
import time

from rkdsc_core.config import to_dict
from rkdsc_core.provenance import provenance
from rkdsc_train.context import StageContext
from rkdsc_train.targets import load_trained_teacher, store_entry, teacher_weights_path

log = logging.getLogger(__name__)


def run(ctx: StageContext) -> dict:
    teacher = load_trained_teacher(ctx)
    entries = {}
    for split in ("train", "test"):
        t0 = time.time()
        entry = store_entry(ctx, split, teacher=teacher)
        entries[split] = {
            "path": str(entry.path),
            "digest": entry.key.digest(),
            "views": entry.num_views,
            "n": len(entry),
            "dim": int(entry.embeddings.shape[2]),
            "classes": int(entry.logits.shape[2]),
            "seconds": time.time() - t0,
        }
        log.info("store %s: %s", split, entries[split])
    ctx.write_json(
        "store.json",
        {
            "teacher": str(teacher_weights_path(ctx)),
            "teacher_fingerprint": entry.key.teacher_sha256,  # SHA-256 of spec + weights
            "entries": entries,
            "provenance": provenance(to_dict(ctx.cfg), ctx.cfg.seed),
        },
    )
    return {split: {k: e[k] for k in ("views", "n", "dim")} for split, e in entries.items()}
