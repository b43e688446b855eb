"""`rkdsc_feedback_link`: the receiver → transmitter feedback path for simulation (issue 18):
each message is held back `delay` messages and lost with probability `loss` (seeded); and
`feedback_meter`, the transmitter's end of the path inside `rkdsc_ota_tx`."""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_gr._feedback import PORT_FEEDBACK, RoundTrips, parse_feedback
from rkdsc_gr._pdu import PORT_IN, PORT_OUT, DropCounter, guarded

log = logging.getLogger(__name__)


class feedback_link(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """A delaying, lossy message link.

    Args:
        delay: messages held back: message m leaves when message m + delay arrives (the receiver
            sends one per decided image or increment, so this is a delay in images).
        loss: probability that a message is lost, in [0, 1).
        seed: seed of the losses.

    Input `in`, output `out`: any message (the feedback dicts of `semantic_rx`), in order.
    Messages still held when the graph stops are never delivered: the receivers' timeouts decide
    the images they were waiting for.
    """

    def __init__(self, delay: int = 0, loss: float = 0.0, seed: int = 0) -> None:
        gr.basic_block.__init__(self, name="rkdsc_feedback_link", in_sig=None, out_sig=None)
        if int(delay) < 0:
            raise ValueError(f"delay must be >= 0 messages, got {delay}")
        if not 0.0 <= float(loss) < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        self._delay, self._loss = int(delay), float(loss)
        self._rng = np.random.default_rng(int(seed))
        self._held: deque = deque()
        self._lock = threading.Lock()
        self._passed = self._lost = 0
        self._drops = DropCounter(log, "feedback_link")
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.set_msg_handler(PORT_IN, self._handle)

    def passed(self) -> int:
        """Messages delivered so far."""
        return self._passed

    def lost(self) -> int:
        """Messages lost so far."""
        return self._lost

    @guarded
    def _handle(self, msg) -> None:
        with self._lock:
            self._held.append(msg)
            out = []
            while len(self._held) > self._delay:
                m = self._held.popleft()
                if self._loss and self._rng.random() < self._loss:
                    self._lost += 1
                else:
                    out.append(m)
            self._passed += len(out)
        for m in out:
            self.message_port_pub(PORT_OUT, m)


class feedback_meter(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """The transmitter's end of the feedback link: each feedback dict (`index`, see
    `rkdsc_gr._feedback`) closes the round trip of that image's last burst in `RoundTrips`. A
    block of its own, so that its arrival time is not held up by a framer waiting for room."""

    def __init__(self, round_trips: RoundTrips) -> None:
        gr.basic_block.__init__(self, name="rkdsc_ota_feedback_meter", in_sig=None, out_sig=None)
        self.round_trips = round_trips
        self._drops = DropCounter(log, "ota_tx feedback")
        self.message_port_register_in(PORT_FEEDBACK)
        self.set_msg_handler(PORT_FEEDBACK, self._handle)

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        index, _, more = parse_feedback(msg)  # BadPdu: logged, counted, dropped by @guarded
        self.round_trips.heard(index, more)
