"""`rkdsc_ota_tx`: symbol PDU → one burst of IQ samples per frame, with `tx_sob`/`tx_eob` tags.

    in ─► ota_framer (rkdsc_core.phy: header, pilots, RRC, PAPR clip) ─► pdu_to_stream_c ─► out
                  └─► frames (one dict per burst: header fields, sample_start, sample_count)

Shaping runs per frame in numpy (one convolution per burst), so the burst is bit-for-bit the golden
`FrameModulator` output and never straddles a stream chunk; the stream side is GNU Radio's own
`pdu.pdu_to_stream_c`, whose burst tags burst-mode USRP/Soapy sinks expect.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pmt
from gnuradio import gr, pdu

from rkdsc_core.phy import FrameConfig, FrameModulator, Header
from rkdsc_gr._pdu import (
    INDEX,
    LABEL,
    PORT_IN,
    PORT_OUT,
    RATE,
    BadPdu,
    DropCounter,
    c32_array,
    guarded,
    make_pdu,
    meta_int,
    queue_empty,
    split_pdu,
)

log = logging.getLogger(__name__)

PORT_FRAMES = pmt.intern("frames")
FRAME_INDEX = pmt.intern("frame_index")
BUNDLE_ID = pmt.intern("bundle_id")
SAMPLE_START = pmt.intern("sample_start")
SAMPLE_COUNT = pmt.intern("sample_count")
CLIPPED = pmt.intern("clipped")


def frame_config(
    sps: int = 4,
    rolloff: float = 0.35,
    pilot_spacing: int = 16,
    papr_db: float = 9.0,
    guard: int = 64,
) -> FrameConfig:
    """The FrameConfig both OTA blocks build from their GRC parameters (the other fields fixed)."""
    return FrameConfig(
        sps=int(sps),
        rolloff=float(rolloff),
        pilot_spacing=int(pilot_spacing),
        papr_db=float(papr_db),
        guard=int(guard),
    )


def default_tail(cfg: FrameConfig) -> int:
    """Zeros after the last burst that `ota_rx` needs to finish it: its detector delays the
    stream by the template length h and processes FFT blocks of up to ~3h samples, and the
    receiver looks a few symbols past the burst's last one; 4h + 256 covers all of it."""
    template = (2 * cfg.zc_length - 1) * cfg.sps + 1  # preamble.detection_template
    return 4 * template + 256


class ota_framer(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Symbol PDU → burst PDU (c32vector of samples, |x| <= 1) and a `frames` record per burst.

    The header takes the image index from metadata `index`, the label from `label` (when 0..254),
    the frame index from a counter and K from the PDU length. When the input queue is empty after
    a burst, `tail` zeros follow it. `sample_start` counts samples in the order bursts leave, i.e.
    the output-stream offset as long as nothing downstream drops bursts.

    Back-pressure: with `stream` (the pdu_to_stream block fed) set, a burst waits while more than
    `max_backlog` samples are queued there. Message ports have none of their own, and
    pdu_to_stream_c merges queued bursts into one vector that it erases from the front chunk by
    chunk, which grows quadratically with the backlog. A stream that stops moving for
    `STALL_S` (a stopped graph) ends the waiting.
    """

    STALL_S = 0.2
    POLL_S = 0.0005

    def __init__(
        self,
        cfg: FrameConfig,
        bundle_id: int = 0,
        max_rate: int = 4095,
        if_offset: float = 0.0,
        tail: int = 1024,
        stream=None,
        max_backlog: int = 1 << 16,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_ota_framer", in_sig=None, out_sig=None)
        self._stream = stream
        self._max_backlog = int(max_backlog)
        self._stalled = False
        self.cfg = cfg
        self._mod = FrameModulator(cfg)
        self._bundle_id = int(bundle_id) & 0xFFFF
        self._max_rate = int(max_rate)
        self._if_offset = float(if_offset)
        self._tail = make_pdu(pmt.make_dict(), np.zeros(int(tail), np.complex64)) if tail else None
        self._tail_len = int(tail)
        self._drops = DropCounter(log, "ota_tx")
        self.sent = 0
        self.samples = 0
        self.clipped = 0
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.message_port_register_out(PORT_FRAMES)
        self.set_msg_handler(PORT_IN, self._handle)

    def stop(self) -> bool:
        self._drops.summary()
        if self.clipped:
            log.info("ota_tx: %d samples clipped in %d bursts", self.clipped, self.sent)
        return True

    def _wait_for_room(self) -> None:
        """Poll (bounded by STALL_S without progress) until the stream's backlog is small."""
        if self._stream is None or self._max_backlog <= 0:
            return
        last = self._stream.nitems_written(0)
        if self._stalled and last == self._stall_mark:
            return
        self._stalled = False
        moved = time.monotonic()
        while self.samples - last > self._max_backlog:
            time.sleep(self.POLL_S)
            now = self._stream.nitems_written(0)
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > self.STALL_S:
                self._stalled, self._stall_mark = True, now
                log.debug("ota_tx: the stream stopped moving; not waiting for it")
                return

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        self._wait_for_room()
        meta, vec = split_pdu(msg)
        sym = c32_array(vec, "symbol PDU", self._max_rate)
        index = meta_int(meta, INDEX)
        label = meta_int(meta, LABEL)
        header = Header.wrap(len(sym), self.sent, index or 0, self._bundle_id, label)
        try:
            burst = self._mod.modulate(header, sym)
        except ValueError as exc:
            raise BadPdu(f"cannot frame it: {exc}") from None
        samples = burst.samples
        n = len(samples)
        if self._if_offset:  # the burst's own phase reference: the receiver estimates it anyway
            samples = samples * np.exp(2j * np.pi * self._if_offset * np.arange(n)).astype(
                np.complex64
            )
        info = pmt.make_dict()
        for key, value in (
            (FRAME_INDEX, header.frame_index),
            (INDEX, index or 0),
            (RATE, len(sym)),
            (BUNDLE_ID, self._bundle_id),
            (SAMPLE_START, self.samples),
            (SAMPLE_COUNT, n),
            (CLIPPED, burst.clipped),
        ):
            info = pmt.dict_add(info, key, pmt.from_long(int(value)))
        if label is not None:
            info = pmt.dict_add(info, LABEL, pmt.from_long(label))
        self.message_port_pub(PORT_OUT, make_pdu(pmt.make_dict(), samples))
        self.message_port_pub(PORT_FRAMES, pmt.cons(info, pmt.PMT_NIL))
        self.samples += n
        if self._tail is not None and queue_empty(self):
            # input ran dry: push the last burst through the receiver's look-ahead
            self.message_port_pub(PORT_OUT, self._tail)
            self.samples += self._tail_len
        self.clipped += burst.clipped
        self.sent += 1  # last: once it moves, the burst is queued downstream


class ota_tx(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Over-the-air transmitter: symbol PDUs in, bursts of complex samples out.

    Args:
        sps: samples per symbol (even).
        rolloff: RRC roll-off.
        pilot_spacing: at most pilot_spacing − 1 data symbols per pilot.
        papr_db: headroom of the average sample power below full scale (|x| = 1); peaks above are
            clipped.
        guard: zero samples before and after each burst.
        bundle_id: 16-bit bundle identifier written into every header.
        if_offset: carrier offset of the bursts from the tuned frequency, cycles/sample (|f| <
            0.5 − (1 + rolloff)/(2·sps)); a non-zero offset keeps the signal off the radios' DC.
        tail: zero samples sent whenever the input runs dry (after the last burst of a batch), so
            that a receiver's detector history, chunking and look-ahead see the last frame of a
            finite stream; −1 (default) sizes it for `ota_rx` (`default_tail`), 0 for none.
        max_queue: bursts `pdu_to_stream_c` may hold (message ports have no back-pressure: a
            burst arriving at a full queue is dropped with a warning from that block).

    Message in `in`: symbol PDUs (c32vector[K], metadata `index`, `label` as semantic_tx emits).
    Stream out: complex samples, bursts tagged `tx_sob` / `tx_eob`. Message out `frames`: a dict per
    burst (`frame_index`, `index`, `rate`, `label`, `bundle_id`, `sample_start`, `sample_count`,
    `clipped`) for recordings' annotations. Accessors: `frames_sent()`, `samples_sent()` (bursts
    and tails), `dropped()`.
    """

    def __init__(
        self,
        sps: int = 4,
        rolloff: float = 0.35,
        pilot_spacing: int = 16,
        papr_db: float = 9.0,
        guard: int = 64,
        bundle_id: int = 0,
        if_offset: float = 0.0,
        tail: int = -1,
        max_queue: int = 4096,
    ) -> None:
        gr.hier_block2.__init__(
            self,
            "rkdsc_ota_tx",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
        )
        self.cfg = frame_config(sps, rolloff, pilot_spacing, papr_db, guard)
        self.message_port_register_hier_in("in")
        self.message_port_register_hier_out("frames")
        edge = abs(if_offset) + (1 + self.cfg.rolloff) / (2 * self.cfg.sps)
        if edge >= 0.5:
            raise ValueError(f"if_offset {if_offset} puts the signal band past ±0.5 cycles/sample")
        tail = default_tail(self.cfg) if tail < 0 else int(tail)
        self.to_stream = pdu.pdu_to_stream_c(pdu.EARLY_BURST_APPEND, int(max_queue))
        self.framer = ota_framer(
            self.cfg, bundle_id, if_offset=if_offset, tail=tail, stream=self.to_stream
        )
        self.msg_connect(self, "in", self.framer, "in")
        self.msg_connect(self.framer, "out", self.to_stream, "pdus")
        self.msg_connect(self.framer, "frames", self, "frames")
        self.connect(self.to_stream, self)

    def frames_sent(self) -> int:
        """Bursts handed to the stream so far."""
        return self.framer.sent

    def samples_sent(self) -> int:
        return self.framer.samples

    def dropped(self) -> int:
        """Symbol PDUs dropped (malformed, or K too large)."""
        return self.framer._drops.total
