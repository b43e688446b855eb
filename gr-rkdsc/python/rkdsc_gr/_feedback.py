"""The feedback message of rate adaptation (issue 18) and the metadata of IR increments.

Feedback (semantic_rx `feedback` → feedback_link → semantic_tx `feedback`): a PMT dict with
`index` (int), `snr_db` (float, the receiver's SNR estimate), `confidence` (float), `symbols`
(int, received for the image) and `more` (bool, True asks for the image's next increment).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np
import pmt

from rkdsc_gr._pdu import BadPdu

PORT_FEEDBACK = pmt.intern("feedback")
IR_OFFSET = pmt.intern("ir_offset")  # int: the increment's first symbol in the image's code
IR_GAIN = pmt.intern("ir_gain")  # float: RMS of its raw symbols / that of the first increment
IR_FINAL = pmt.intern("ir_final")  # bool: the transmitter has no further increment
IR_KEYS = (IR_OFFSET, IR_GAIN, IR_FINAL)

_INDEX, _SNR = pmt.intern("index"), pmt.intern("snr_db")
_CONF, _SYMBOLS, _MORE = pmt.intern("confidence"), pmt.intern("symbols"), pmt.intern("more")


def feedback_message(index: int, snr_db: float, confidence: float, symbols: int, more: bool):
    """The feedback dict of one image."""
    d = pmt.make_dict()
    d = pmt.dict_add(d, _INDEX, pmt.from_long(int(index)))
    d = pmt.dict_add(d, _SNR, pmt.from_double(float(snr_db)))
    d = pmt.dict_add(d, _CONF, pmt.from_double(float(confidence)))
    d = pmt.dict_add(d, _SYMBOLS, pmt.from_long(int(symbols)))
    return pmt.dict_add(d, _MORE, pmt.from_bool(bool(more)))


def parse_feedback(msg) -> tuple[int, float, bool]:
    """(index, snr_db, more) of a feedback dict; `BadPdu` (a ValueError) when it is not one."""
    if not pmt.is_dict(msg):
        raise BadPdu("feedback is not a dict")
    index, snr = pmt.dict_ref(msg, _INDEX, pmt.PMT_NIL), pmt.dict_ref(msg, _SNR, pmt.PMT_NIL)
    if not pmt.is_integer(index) or not pmt.is_real(snr):
        raise BadPdu("feedback needs an integer 'index' and a real 'snr_db'")
    more = pmt.dict_ref(msg, _MORE, pmt.PMT_F)
    return int(pmt.to_long(index)), float(pmt.to_double(snr)), pmt.is_true(more)


class HoldDone:
    """Whether a block that is done with its input should still wait: True while `busy()`
    (images waiting for feedback) and at most `grace_s` after the last `touch()`. Passed to
    `PduWorker(hold=…)`: GNU Radio would otherwise end a transmitter as soon as its last image
    is encoded, before the receiver's requests come back round the feedback loop."""

    def __init__(self, busy, grace_s: float) -> None:
        self._busy, self._grace = busy, float(grace_s)
        self._last = time.monotonic()

    def touch(self) -> None:
        self._last = time.monotonic()

    def __call__(self) -> bool:
        return bool(self._busy()) and time.monotonic() - self._last <= self._grace


class RoundTrips:
    """Round-trip times of a transmitter: `sent(first, n)` stamps images first … first + n − 1
    (a burst leaving), `heard(index, more)` closes that image's round trip when its feedback
    arrives. Thread-safe (the framer and the feedback meter run on their own threads); at most
    `remember` images are stamped (the oldest are forgotten)."""

    def __init__(self, remember: int = 1 << 16) -> None:
        self._lock = threading.Lock()
        self._stamps: OrderedDict[int, float] = OrderedDict()
        self._remember = int(remember)
        self._rtt: list[float] = []
        self.feedback = self.requests = 0

    def sent(self, first: int, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            for i in range(int(first), int(first) + int(n)):
                self._stamps.pop(i % (1 << 24), None)
                self._stamps[i % (1 << 24)] = now
            while len(self._stamps) > self._remember:
                self._stamps.popitem(last=False)

    def heard(self, index: int, more: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self.feedback += 1
            self.requests += bool(more)
            t = self._stamps.pop(int(index) % (1 << 24), None)
            if t is not None:
                self._rtt.append(now - t)

    def summary(self) -> dict:
        with self._lock:
            rtt = np.asarray(self._rtt)
            return {
                "feedback": self.feedback,
                "requests": self.requests,
                "rtt_n": len(rtt),
                "rtt_mean_s": float(rtt.mean()) if len(rtt) else None,
                "rtt_p95_s": float(np.percentile(rtt, 95)) if len(rtt) else None,
            }
