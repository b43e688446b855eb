"""PDU ↔ stream ends of `symbol_channel`: the feeder and source before GNU Radio's channel blocks
and the collector after them, sharing a FIFO of (metadata, length) so PDU boundaries survive the
stream.

The feeder hands the source its sample chunks through a deque, not as PDUs to GNU Radio's
`pdu_to_tagged_stream`: that block stops for good when its upstream has finished and its output
buffer is momentarily too short for the next PDU, stranding the PDUs still queued (the end of a
large fast batch never arrived; cf. gnuradio PR #7028). The source splits chunks across calls, so it
returns nothing only when it has nothing, and only then finishes.

`channels.channel_model` outputs y[m] = x[m + 3] (its MMSE resampler swallows the first 3 samples)
and, while streaming, holds back the last 8 samples it was given plus a partial alignment chunk
(its outputs come in multiples of the volk alignment, 8 samples here; 5..12 held back measured).
The feeder therefore primes the stream once with `LEAD` zeros and, whenever its input queue runs
dry, appends `FLUSH` zeros that push the tail of the last PDU out; the collector cuts the stream
by the FIFO and discards the fillers.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_gr._pdu import (
    CSI,
    PORT_IN,
    PORT_OUT,
    SNR_DB,
    DropCounter,
    c32_array,
    guarded,
    make_pdu,
    queue_empty,
    split_pdu,
    to_vector,
)

log = logging.getLogger(__name__)

LEAD = 3  # samples channel_model swallows at the start of its stream
FLUSH = 24  # > 8 (resampler) + 15 (alignment chunk of up to 16 samples) it may hold back
PORT_WAKE = pmt.intern("wake")
_WAKE = pmt.PMT_T


class symbol_feeder(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Symbol PDU → (samples, hold control) chunk in `chunks` for `symbol_source`, woken through
    port `wake` (control: 1 on the first symbol of each image, for block fading); stamps
    `snr_db` and records (metadata, K) in `fifo`."""

    def __init__(
        self,
        fifo: deque,
        chunks: deque,
        snr_db: float,
        max_symbols: int,
        hold: bool,
        keeps_csi: bool,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_symbol_feeder", in_sig=None, out_sig=None)
        self._fifo = fifo
        self._chunks = chunks
        self._snr = pmt.from_double(float(snr_db))
        self._max = int(max_symbols)
        self._hold = hold
        self._keeps_csi = keeps_csi
        self._primed = False
        self._tail = False  # data sent since the last flush
        self._drops = DropCounter(log, "symbol_channel")
        self._lock = threading.Lock()
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_WAKE)
        self.set_msg_handler(PORT_IN, self._handle)

    def set_snr(self, snr_db: float) -> None:
        with self._lock:
            self._snr = pmt.from_double(float(snr_db))

    def dropped(self) -> int:
        return self._drops.total

    def stop(self) -> bool:
        self._drops.summary()
        return True

    def _send(self, x: np.ndarray, first: int) -> None:
        ctl = None
        if self._hold:
            ctl = np.zeros(len(x), np.uint8)
            ctl[0] = first
        self._chunks.append((x, ctl))
        self.message_port_pub(PORT_WAKE, _WAKE)  # after the append: the source cannot miss it

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        try:
            meta, vec = split_pdu(msg)
            x = c32_array(vec, "symbol PDU", self._max)
            if not self._primed:
                self._send(np.zeros(LEAD, np.complex64), 0)
                self._primed = True
            with self._lock:
                meta = pmt.dict_add(meta, SNR_DB, self._snr)
            if not self._keeps_csi:
                meta = pmt.dict_delete(meta, CSI)
            self._fifo.append((meta, len(x)))  # before the samples can reach the collector
            self._send(x, 1)
            self._tail = True
        finally:
            if self._tail and queue_empty(self):
                self._fifo.append((None, FLUSH))
                self._send(np.zeros(FLUSH, np.complex64), 0)
                self._tail = False


class symbol_source(gr.sync_block):  # noqa: N801 - GNU Radio block naming
    """The feeder's chunks as a sample stream (and, with `with_ctl`, the hold-control stream as
    a second, uint8 output). Messages on `wake` only wake it (and, at the end, finish it)."""

    def __init__(self, chunks: deque, with_ctl: bool) -> None:
        gr.sync_block.__init__(
            self,
            name="rkdsc_symbol_source",
            in_sig=None,
            out_sig=[np.complex64] + ([np.uint8] if with_ctl else []),
        )
        self._chunks = chunks
        self._with_ctl = with_ctl
        self._head: tuple[np.ndarray, np.ndarray | None] | None = None
        self._pos = 0
        self.message_port_register_in(PORT_WAKE)
        self.set_msg_handler(PORT_WAKE, self._wake)

    def _wake(self, msg: pmt.pmt_t) -> None:
        pass  # the scheduler calls work() after handling messages

    def work(self, input_items, output_items) -> int:
        out = output_items[0]
        ctl_out = output_items[1] if self._with_ctl else None
        n = done = 0
        try:
            n = len(out)
            while done < n:
                if self._head is None:
                    if not self._chunks:
                        break
                    self._head, self._pos = self._chunks.popleft(), 0
                x, ctl = self._head
                take = min(n - done, len(x) - self._pos)
                out[done : done + take] = x[self._pos : self._pos + take]
                if ctl_out is not None:
                    ctl_out[done : done + take] = ctl[self._pos : self._pos + take]
                done += take
                self._pos += take
                if self._pos == len(x):
                    self._head = None
        except Exception:  # noqa: BLE001 - never let an exception escape work()
            log.exception("symbol_channel source: dropping the chunk in progress")
            self._head = None
        return done


class symbol_collector(gr.sync_block):  # noqa: N801 - GNU Radio block naming
    """Received stream (and, with CSI, the gain stream aligned to it) → symbol PDUs on `out`,
    cut by the feeder's FIFO; metadata gains `csi` (c32vector[K]) when `with_csi`."""

    def __init__(self, fifo: deque, with_csi: bool) -> None:
        gr.sync_block.__init__(
            self,
            name="rkdsc_symbol_collector",
            in_sig=[np.complex64] * (2 if with_csi else 1),
            out_sig=None,
        )
        self._fifo = fifo
        self._with_csi = with_csi
        self._cur: list | None = None  # [meta or None, samples still needed]
        self._ys: list[np.ndarray] = []
        self._hs: list[np.ndarray] = []
        self._stray = 0
        self._emitted = 0
        self.message_port_register_out(PORT_OUT)

    def emitted(self) -> int:
        return self._emitted

    def stray(self) -> int:
        """Samples that arrived with no FIFO entry (0 unless the stream lost alignment)."""
        return self._stray

    def work(self, input_items, output_items) -> int:
        n = len(input_items[0])
        try:
            self._consume(input_items[0], input_items[1] if self._with_csi else None)
        except Exception:  # noqa: BLE001 - never let an exception escape work()
            log.exception("symbol_channel collector: dropping the PDU in progress")
            self._cur = None
        return n

    def _consume(self, y: np.ndarray, h: np.ndarray | None) -> None:
        n, pos = len(y), 0
        while pos < n:
            if self._cur is None:
                if not self._fifo:
                    if not self._stray:
                        log.error("symbol_channel: samples with no PDU to carry them (alignment)")
                    self._stray += n - pos
                    return
                self._cur = list(self._fifo.popleft())
                self._ys, self._hs = [], []
            meta, need = self._cur
            take = min(need, n - pos)
            if meta is not None:
                self._ys.append(y[pos : pos + take].copy())
                if h is not None:
                    self._hs.append(h[pos : pos + take].copy())
            pos += take
            self._cur[1] = need - take
            if self._cur[1] == 0:
                if meta is not None:
                    self._emit(meta)
                self._cur = None

    def _emit(self, meta: pmt.pmt_t) -> None:
        y = np.concatenate(self._ys)
        if self._with_csi:
            meta = pmt.dict_add(meta, CSI, to_vector(np.concatenate(self._hs)))
        self.message_port_pub(PORT_OUT, make_pdu(meta, y))
        self._emitted += 1
