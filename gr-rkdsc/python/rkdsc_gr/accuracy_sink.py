"""`rkdsc_accuracy_sink`: decision PDUs counted against their labels; running accuracy; JSON."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pmt
from gnuradio import gr

from rkdsc_gr._pdu import CLASS, LABEL, PORT_IN, BadPdu, DropCounter, guarded, meta_int, split_pdu

log = logging.getLogger(__name__)


class accuracy_sink(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Top-1 accuracy of decision PDUs (metadata `class` and `label`, both integers).

    Args:
        json_path: where `stop()` writes `stats()` as JSON ("" = nowhere).
        json_every: also write it every `json_every` decisions (0 = only on stop).

    Accessors (thread-safe, for probes and tests): `count()`, `correct()`, `accuracy()`,
    `dropped()`, `stats()`; `reset()` clears the counts.
    """

    def __init__(self, json_path: str = "", json_every: int = 0) -> None:
        gr.basic_block.__init__(self, name="rkdsc_accuracy_sink", in_sig=None, out_sig=None)
        if json_every < 0 or (json_every and not json_path):
            raise ValueError(f"json_every={json_every} needs json_path and must be >= 0")
        self._json_path = str(json_path or "")
        self._json_every = int(json_every)
        self._lock = threading.Lock()
        self._drops = DropCounter(log, "accuracy_sink")
        self._reset()
        self.message_port_register_in(PORT_IN)
        self.set_msg_handler(PORT_IN, self._handle)

    def _reset(self) -> None:
        self._n = self._correct = 0
        self._t_first = self._t_last = None

    def reset(self) -> None:
        with self._lock:
            self._reset()

    def count(self) -> int:
        """Decisions counted."""
        return self._n

    def correct(self) -> int:
        return self._correct

    def accuracy(self) -> float:
        """Running top-1 accuracy in [0, 1] (0 before the first decision)."""
        with self._lock:
            return self._correct / self._n if self._n else 0.0

    def dropped(self) -> int:
        """PDUs without an integer `class` and `label` (not counted)."""
        return self._drops.total

    def stats(self) -> dict:
        """{"n", "correct", "accuracy", "dropped", "elapsed_s", "decisions_per_s"}."""
        with self._lock:
            n, correct, t0, t1 = self._n, self._correct, self._t_first, self._t_last
        elapsed = (t1 - t0) if n > 1 else 0.0
        return {
            "n": n,
            "correct": correct,
            "accuracy": correct / n if n else None,
            "dropped": self._drops.total,
            "elapsed_s": elapsed,
            "decisions_per_s": (n - 1) / elapsed if elapsed > 0 else None,
        }

    def write_json(self, path: str | None = None) -> Path | None:
        """Write `stats()` to `path` (default: the block's `json_path`); None if neither is set."""
        path = path or self._json_path
        if not path:
            return None
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")  # readers never see a half-written file
        tmp.write_text(json.dumps(self.stats(), indent=2) + "\n")
        tmp.replace(out)
        return out

    def stop(self) -> bool:
        try:
            self.write_json()
        except OSError as exc:
            log.error("accuracy_sink: cannot write %s: %s", self._json_path, exc)
        self._drops.summary()
        return True

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        meta, _ = split_pdu(msg)
        cls, label = meta_int(meta, CLASS), meta_int(meta, LABEL)
        if cls is None or label is None:
            raise BadPdu("decision PDU needs integer 'class' and 'label' metadata")
        now = time.monotonic()
        with self._lock:
            self._n += 1
            self._correct += int(cls == label)
            self._t_first = self._t_first if self._t_first is not None else now
            self._t_last = now
            due = self._json_every and self._n % self._json_every == 0
        if due:
            self.write_json()
