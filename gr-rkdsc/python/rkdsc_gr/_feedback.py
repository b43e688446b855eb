"""The feedback message of rate adaptation (issue 18) and the metadata of IR increments.

Feedback (semantic_rx `feedback` → feedback_link → semantic_tx `feedback`): a PMT dict with
`index` (int), `snr_db` (float, the receiver's SNR estimate), `confidence` (float), `symbols`
(int, received for the image) and `more` (bool, True asks for the image's next increment).
"""

from __future__ import annotations

import time

import pmt

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
    """(index, snr_db, more) of a feedback dict; ValueError when it is not one."""
    if not pmt.is_dict(msg):
        raise ValueError("feedback is not a dict")
    index, snr = pmt.dict_ref(msg, _INDEX, pmt.PMT_NIL), pmt.dict_ref(msg, _SNR, pmt.PMT_NIL)
    if not pmt.is_integer(index) or not pmt.is_real(snr):
        raise ValueError("feedback needs an integer 'index' and a real 'snr_db'")
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
