"""A worker thread for the model blocks' PDU work, so that a flowgraph stops promptly.

GNU Radio runs a message block's handler on the block's scheduler thread and drains the whole
input queue before it looks at `top_block.stop()`; a backlog of images therefore used to be
encoded in full after `stop()` (14 s for 10k images, issue 21 row 6). Here the handler only
queues the message; the worker parses and batches, and `stop()` abandons what is still queued.
A `done` on the system port (a finite source has finished) is held back until the worker has
published everything queued before it, so `run()` still delivers every PDU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import pmt

from rkdsc_gr._pdu import PORT_IN, BadPdu, DropCounter

log = logging.getLogger(__name__)

_SYSTEM = pmt.intern("system")
_DONE = pmt.intern("done")
STOP_JOIN_S = 2.0  # longest stop() waits for the batch in hand
DRAIN_S = 0.005
HOLD_POLL_S = 0.05  # how often a held block asks whether it may end


class PduWorker:
    """Runs `parse(msg) -> item` (raising BadPdu to drop) and `flush([item, …])` for `block`'s
    `in` port on its own thread, in batches of at most `max_batch` queued messages (a message
    alone goes at once, a backlog in large batches). Call `start()` / `stop()` from the block's."""

    def __init__(
        self,
        block,
        parse: Callable[[pmt.pmt_t], object],
        flush: Callable[[list], None],
        drops: DropCounter,
        max_batch: int,
        hold: Callable[[], bool] | None = None,
    ) -> None:
        self._block, self._parse, self._flush, self._drops = block, parse, flush, drops
        self._max_batch = max(1, int(max_batch))
        self._hold = hold  # True while the block must not end yet (images awaiting feedback)
        self._queue: deque = deque()
        self._cv = threading.Condition()
        self._done: pmt.pmt_t | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.discarded = 0  # queued PDUs abandoned by stop()

        # GNU Radio's gateway calls a handler by its __name__, looked up on the block itself
        def _rkdsc_worker_in(msg):
            self._put(msg)

        def _rkdsc_worker_system(msg):
            self._system(msg)

        block._rkdsc_worker_in, block._rkdsc_worker_system = _rkdsc_worker_in, _rkdsc_worker_system
        block.set_msg_handler(PORT_IN, _rkdsc_worker_in)
        block.set_msg_handler(_SYSTEM, _rkdsc_worker_system)

    def start(self) -> None:
        with self._cv:
            self._stopping, self._done = False, None
        self._thread = threading.Thread(target=self._run, name=self._block.name(), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self.discarded += len(self._queue)
            self._queue.clear()
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
        if self.discarded:
            log.info("%d queued PDU(s) discarded at stop", self.discarded)

    def pending(self) -> int:
        """Messages queued and not yet taken by the worker."""
        return len(self._queue)

    def _put(self, msg: pmt.pmt_t) -> None:
        with self._cv:
            self._queue.append(msg)
            self._cv.notify()

    def _system(self, msg: pmt.pmt_t) -> None:
        if pmt.is_pair(msg) and pmt.eq(pmt.car(msg), _DONE):
            with self._cv:
                self._done = msg
                self._cv.notify()
        else:
            self._block.to_basic_block().system_handler(msg)

    def _run(self) -> None:
        while True:
            items = []
            while len(items) < self._max_batch:  # a batch: good PDUs until full or queue empty
                with self._cv:
                    while not items and not self._queue and not self._stopping:
                        if self._done is not None:
                            break
                        self._cv.wait()
                    if self._stopping:
                        return
                    if not self._queue:
                        break
                    msg = self._queue.popleft()
                item = self._parse_one(msg)
                if item is not None:
                    items.append(item)
            if items:
                self._flush_batch(items)
                continue
            if self._drained():
                with self._cv:
                    done = self._done
                break
        # everything queued before `done` is out; a block with images awaiting feedback holds
        while self._hold is not None and self._hold() and not self._stopping:
            time.sleep(HOLD_POLL_S)
        # now let the scheduler finish this block
        self._block.to_basic_block().system_handler(done)

    def _drained(self) -> bool:
        """True when `done` has come and no message is left, neither here nor in GNU Radio's own
        queue of the `in` port (the scheduler may handle the system port first): seen twice,
        DRAIN_S apart, so that a message being handed over is not missed."""
        for _ in range(2):
            with self._cv:
                if self._done is None or self._queue:
                    return False
            if self._block.to_basic_block().nmsgs(PORT_IN):
                time.sleep(DRAIN_S)
                return False
            time.sleep(DRAIN_S)
        with self._cv:
            return not self._queue

    def _parse_one(self, msg: pmt.pmt_t):
        try:
            return self._parse(msg)
        except BadPdu as exc:
            self._drops.drop(str(exc))
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            self._drops.drop(f"unexpected {type(exc).__name__}: {exc}", exc_info=True)
        return None

    def _flush_batch(self, items: list) -> None:
        try:
            self._flush(items)
        except Exception as exc:  # noqa: BLE001 - drop the batch, keep the block alive
            self._drops.drop(f"failed: {type(exc).__name__}: {exc}", len(items), True)
