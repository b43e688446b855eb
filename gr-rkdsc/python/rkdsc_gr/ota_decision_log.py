"""`rkdsc_ota_decision_log`: one JSON line per decision PDU (from `semantic_rx`), for replays and
over-the-air runs whose decisions are compared frame by frame, not only as an accuracy."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_gr._pdu import PORT_IN, BadPdu, DropCounter, guarded, split_pdu

log = logging.getLogger(__name__)

#: metadata keys written (those present), in this order
KEYS = (
    "frame_index",
    "index",
    "label",
    "class",
    "class_name",
    "rate",
    "snr_db",
    "cfo",
    "sample_start",
)


def _json_value(key: str, value):
    """A metadata value as JSON can hold it: numbers (non-finite floats become null), strings,
    booleans; BadPdu for anything else (arrays, tuples, …)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    raise BadPdu(f"metadata '{key}' is a {type(value).__name__}, not a JSON scalar")


class ota_decision_log(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Append `{"frame_index", "index", "label", "class", "class_name", "rate", "snr_db", ...}`
    per decision PDU to `path` (JSON lines; the file is truncated at start). Accessor `count()`."""

    def __init__(self, path: str) -> None:
        gr.basic_block.__init__(self, name="rkdsc_ota_decision_log", in_sig=None, out_sig=None)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self._lock = threading.Lock()
        self._count = 0
        self._drops = DropCounter(log, "decision_log")
        self.message_port_register_in(PORT_IN)
        self.set_msg_handler(PORT_IN, self._handle)

    def count(self) -> int:
        return self._count

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        meta, _ = split_pdu(msg)
        d = pmt.to_python(meta)
        row = {k: _json_value(k, d[k]) for k in KEYS if k in d}
        line = json.dumps(row, allow_nan=False)  # a value JSON cannot hold raises: dropped
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._count += 1

    def dropped(self) -> int:
        """Decision PDUs not written (malformed metadata)."""
        return self._drops.total

    def stop(self) -> bool:
        self._drops.summary()
        with self._lock:
            if not self._file.closed:
                self._file.close()
        return True
