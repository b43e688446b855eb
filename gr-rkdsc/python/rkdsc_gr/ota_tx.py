"""`rkdsc_ota_tx`: symbol PDUs → one burst of IQ samples per frame of N images, with
`tx_sob`/`tx_eob` tags.

    in ─► ota_framer (rkdsc_core.phy: header, pilots, RRC, PAPR clip) ─► pdu_to_stream_c ─► out
                  └─► frames (one dict per burst: header fields, sample_start, sample_count)
    feedback ─► feedback_meter (round-trip times of the images' feedback; issue 18)

Increments of incremental redundancy (`semantic_tx` adapt "ir": metadata `ir_offset`,
`ir_final`) travel in frames whose version-3 header says so (increment flag, offset, final);
their `ir_gain` does not travel (increments are self-normalising: `rkdsc_core.phy.header`).

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
from rkdsc_core.phy.header import MAX_RATE
from rkdsc_gr._feedback import IR_FINAL, IR_OFFSET, RoundTrips
from rkdsc_gr._hier import init_hier
from rkdsc_gr._pdu import (
    BUNDLE_ID,
    FRAME_INDEX,
    IMAGES,
    INDEX,
    LABEL,
    PORT_IN,
    PORT_OUT,
    RATE,
    SAMPLE_COUNT,
    SAMPLE_START,
    BadPdu,
    DropCounter,
    c32_array,
    guarded,
    make_pdu,
    meta_int,
    queue_empty,
    split_pdu,
)
from rkdsc_gr.feedback_link import feedback_meter

log = logging.getLogger(__name__)

PORT_FRAMES = pmt.intern("frames")
CLIPPED = pmt.intern("clipped")
IMAGE_POS = pmt.intern("image_pos")
INCREMENT = pmt.intern("increment")


def ir_fields(meta: pmt.pmt_t) -> tuple[bool, bool, int]:
    """(increment, final, offset) of a symbol PDU's metadata: (False, False, 0) for a whole
    code; BadPdu for an offset outside the header's 10 bits."""
    offset = meta_int(meta, IR_OFFSET)
    if offset is None:
        return False, False, 0
    if not 0 <= offset < 1 << 10:
        raise BadPdu(f"ir_offset {offset} does not fit the header's 10 bits")
    return True, pmt.is_true(pmt.dict_ref(meta, IR_FINAL, pmt.PMT_F)), int(offset)


#: The FrameConfig fields the OTA blocks expose as GRC parameters (the other fields stay fixed).
GRC_FIELDS = ("sps", "rolloff", "pilot_spacing", "papr_db", "guard", "images_per_frame")


def frame_config(*values: float, **params: float) -> FrameConfig:
    """The FrameConfig both OTA blocks build from their GRC parameters: `GRC_FIELDS` in order or
    by name, each coerced to the type of FrameConfig's default (GRC may hand an int as a float);
    the fields not given keep FrameConfig's defaults."""
    if len(values) > len(GRC_FIELDS):
        raise TypeError(f"frame_config takes at most {len(GRC_FIELDS)} positional parameters")
    named = dict(zip(GRC_FIELDS, values))
    unknown = sorted((set(params) - set(GRC_FIELDS)) | (set(params) & set(named)))
    if unknown:
        raise TypeError(f"frame_config: unknown or repeated parameter: {', '.join(unknown)}")
    named.update(params)
    return FrameConfig(**{k: type(getattr(FrameConfig, k))(v) for k, v in named.items()})


def default_tail(cfg: FrameConfig) -> int:
    """Zeros after the last burst that `ota_rx` needs to finish it: its correlator delays the
    stream by the template length h and processes FFT blocks of a few h, its pre-detector looks a
    whole preamble (R·L·sps) ahead, and the receiver a few symbols past the burst's last one."""
    template = (cfg.zc_length - 1) * cfg.sps + 1  # preamble.repetition_template
    return 4 * template + cfg.preamble_len * cfg.sps + 512


class ota_framer(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Symbol PDUs → burst PDUs (c32vector of samples, |x| <= 1) of up to N images each, and a
    `frames` record per burst.

    Images gather into a frame until it holds `cfg.images_per_frame`, until one arrives whose K
    or IR fields (increment, offset, final) differ or whose index does not follow the previous
    one (the header carries the first index and one set of IR fields only), until the input has
    been idle for `flush_s`, or until the message `flush` (a PMT symbol) arrives on `in` (then a
    shorter frame leaves: the header says how many images it holds). Increments past the first
    (answers to the receiver's requests) leave as soon as the input queue is empty: the image
    waits on them, and further requests come one by one. So the first increments of a batch of
    consecutive images share frames, and answers share one only when they arrive together for
    consecutive images at the same offset. The header takes the image index from metadata
    `index`, the frame index from a counter and K from the PDU length. When the input queue is
    empty after a burst, `tail` zeros follow it. `sample_start` counts samples in the order
    bursts leave, i.e. the output-stream offset as long as nothing downstream drops bursts.

    Back-pressure: with `stream` (the pdu_to_stream block fed) set, a burst waits while more than
    `max_backlog` samples are queued there. Message ports have none of their own, and
    pdu_to_stream_c merges queued bursts into one vector that it erases from the front chunk by
    chunk, which grows quadratically with the backlog. A stream that stops moving for
    `STALL_S` (a stopped graph) ends the waiting.
    """

    STALL_S = 0.2
    POLL_S = 0.002

    def __init__(
        self,
        cfg: FrameConfig,
        bundle_id: int = 0,
        max_rate: int = MAX_RATE,
        if_offset: float = 0.0,
        tail: int = 1024,
        stream=None,
        max_backlog: int = 1 << 18,
        flush_s: float = 1.0,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_ota_framer", in_sig=None, out_sig=None)
        self._stream = stream
        self._max_backlog = int(max_backlog)
        self._stalled = False
        self.cfg = cfg
        self._mod = FrameModulator(cfg)
        self._bundle_id = int(bundle_id) & 0xFFFF
        self._max_rate = min(int(max_rate), MAX_RATE)
        self._if_offset = float(if_offset)
        self._tail = make_pdu(pmt.make_dict(), np.zeros(int(tail), np.complex64)) if tail else None
        self._tail_len = int(tail)
        self._flush_s = float(flush_s)
        self._drops = DropCounter(log, "ota_tx")
        self._images: list[np.ndarray] = []  # the frame being gathered
        self._labels: list[int | None] = []
        self._first_index = 0
        self._ir = (False, False, 0)  # IR fields of the frame being gathered
        self.round_trips = RoundTrips()  # when each image last left, for feedback_meter
        self.frame_symbols = 0  # symbols of the frames sent: preamble, header, payload, pilots
        self._tail_owed = False  # a burst went out while more input was queued
        self.sent = 0  # bursts
        self.images_sent = 0
        self.samples = 0  # bursts and tails
        self.burst_samples = 0  # bursts only
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

    def _send_tail(self) -> None:
        """Input ran dry: push the last burst through the receiver's look-ahead."""
        if self._tail is not None:
            self.message_port_pub(PORT_OUT, self._tail)
            self.samples += self._tail_len
        self._tail_owed = False

    def _idle(self) -> bool:
        """True when nothing arrives within `flush_s` (polling the input queue)."""
        deadline = time.monotonic() + self._flush_s
        while queue_empty(self):
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.001)
        return False

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        if pmt.is_symbol(msg) and pmt.symbol_to_string(msg) == "flush":
            if self._images:  # a partly filled frame leaves now
                self._send()
            elif self._tail_owed and queue_empty(self):
                self._send_tail()  # the last burst left while this message was queued
            return
        meta, vec = split_pdu(msg)
        sym = c32_array(vec, "symbol PDU", self._max_rate)
        index = meta_int(meta, INDEX) or 0
        label = meta_int(meta, LABEL)
        ir = ir_fields(meta)
        if self._images and (
            len(sym) != len(self._images[0])
            or index != (self._first_index + len(self._images)) % (1 << 24)
            or ir != self._ir
        ):
            self._send()
        if not self._images:
            self._first_index = index % (1 << 24)
            self._ir = ir
        self._images.append(sym)
        self._labels.append(label)
        answer = ir[0] and ir[2] > 0 and queue_empty(self)
        if len(self._images) >= self.cfg.images_per_frame or answer or self._idle():
            self._send()

    def _send(self) -> None:
        """Modulate the gathered images as one burst and publish it (then the tail when idle)."""
        images, labels = self._images, self._labels
        self._images, self._labels = [], []
        self._wait_for_room()
        k, n_img = len(images[0]), len(images)
        increment, final, offset = self._ir
        header = Header.wrap(
            k, n_img, self.sent, self._first_index, self._bundle_id, increment, final, offset
        )
        try:
            burst = self._mod.modulate(header, np.stack(images))
        except ValueError as exc:
            self._drops.drop(f"cannot frame it: {exc}", n_img)
            return
        samples = burst.samples
        n = len(samples)
        if self._if_offset:  # the burst's own phase reference: the receiver estimates it anyway
            samples = samples * np.exp(2j * np.pi * self._if_offset * np.arange(n)).astype(
                np.complex64
            )
        info = pmt.make_dict()
        for key, value in (
            (FRAME_INDEX, header.frame_index),
            (INDEX, self._first_index),
            (IMAGES, n_img),
            (RATE, k),
            (BUNDLE_ID, self._bundle_id),
            (SAMPLE_START, self.samples),
            (SAMPLE_COUNT, n),
            (CLIPPED, burst.clipped),
            (INCREMENT, header.increment),
        ):
            info = pmt.dict_add(info, key, pmt.from_long(int(value)))
        if header.increment:
            info = pmt.dict_add(info, IR_OFFSET, pmt.from_long(header.offset))
            info = pmt.dict_add(info, IR_FINAL, pmt.from_bool(bool(header.final)))
        if n_img == 1 and labels[0] is not None:
            info = pmt.dict_add(info, LABEL, pmt.from_long(labels[0]))
        self.message_port_pub(PORT_OUT, make_pdu(pmt.make_dict(), samples))
        self.message_port_pub(PORT_FRAMES, pmt.cons(info, pmt.PMT_NIL))
        self.round_trips.sent(self._first_index, n_img)
        self.samples += n
        self.burst_samples += n
        self.frame_symbols += self.cfg.frame_symbols(k, n_img)
        self._tail_owed = True
        if queue_empty(self):
            self._send_tail()
        self.clipped += burst.clipped
        self.images_sent += n_img
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
        images_per_frame: N, images per frame (preamble and header paid once per N; a lost
            frame loses N images). 1 gives the lowest latency; 512 puts ≥ 70% of the channel uses
            into semantic symbols at K = 16.
        bundle_id: 16-bit bundle identifier written into every header.
        if_offset: carrier offset of the bursts from the tuned frequency, cycles/sample (|f| <
            0.5 − (1 + rolloff)/(2·sps)); a non-zero offset keeps the signal off the radios' DC.
        tail: zero samples sent whenever the input runs dry (after the last burst of a batch), so
            that a receiver's detector history, chunking and look-ahead see the last frame of a
            finite stream; −1 (default) sizes it for `ota_rx` (`default_tail`), 0 for none.
        max_queue: bursts `pdu_to_stream_c` may hold (message ports have no back-pressure: a
            burst arriving at a full queue is dropped with a warning from that block).
        flush_s: a partly filled frame leaves after the input has been idle this long.

    Message in `in`: symbol PDUs (c32vector[K], metadata `index`, `label` as semantic_tx emits;
    IR increments also `ir_offset`, `ir_final`), or the symbol `flush` (send a partly filled
    frame now).
    Message in `feedback`: the receiver's feedback dicts (`semantic_rx` or `ota_rx` output
    `feedback`, e.g. through `feedback_link`): each closes the round trip of its image's last
    burst (`round_trips()`: count, mean and 95th percentile in seconds, requests heard).
    Stream out: complex samples, bursts tagged `tx_sob` / `tx_eob`. Message out `frames`: a dict per
    burst (`frame_index`, `index` of the first image, `images`, `rate`, `bundle_id`,
    `sample_start`, `sample_count`, `clipped`, and `label` for one-image frames) for recordings'
    annotations. Accessors: `frames_sent()`, `images_sent()`, `samples_sent()` (bursts and
    tails), `frame_symbols()` (preamble, header, pilots and payload of every frame sent: the
    channel uses), `round_trips()`, `dropped()`.
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
        images_per_frame: int = 1,
        flush_s: float = 1.0,
    ) -> None:
        init_hier(self, "rkdsc_ota_tx", stream_in=False, stream_out=True)
        self.cfg = frame_config(sps, rolloff, pilot_spacing, papr_db, guard, images_per_frame)
        self.message_port_register_hier_in("in")
        self.message_port_register_hier_in("feedback")
        self.message_port_register_hier_out("frames")
        edge = abs(if_offset) + (1 + self.cfg.rolloff) / (2 * self.cfg.sps)
        if edge >= 0.5:
            raise ValueError(f"if_offset {if_offset} puts the signal band past ±0.5 cycles/sample")
        tail = default_tail(self.cfg) if tail < 0 else int(tail)
        self.to_stream = pdu.pdu_to_stream_c(pdu.EARLY_BURST_APPEND, int(max_queue))
        self.framer = ota_framer(
            self.cfg,
            bundle_id,
            if_offset=if_offset,
            tail=tail,
            stream=self.to_stream,
            flush_s=flush_s,
        )
        self.msg_connect(self, "in", self.framer, "in")
        self.msg_connect(self.framer, "out", self.to_stream, "pdus")
        self.msg_connect(self.framer, "frames", self, "frames")
        self.meter = feedback_meter(self.framer.round_trips)
        self.msg_connect(self, "feedback", self.meter, "feedback")
        self.connect(self.to_stream, self)

    def flush(self) -> None:
        """Send the partly filled frame once the PDUs already queued have been framed."""
        self.framer.to_basic_block()._post(PORT_IN, pmt.intern("flush"))

    def frames_sent(self) -> int:
        """Bursts handed to the stream so far."""
        return self.framer.sent

    def images_sent(self) -> int:
        """Images in the bursts handed to the stream so far."""
        return self.framer.images_sent

    def burst_samples(self) -> int:
        """Samples of the bursts sent (idle tails between batches not counted)."""
        return self.framer.burst_samples

    def samples_sent(self) -> int:
        return self.framer.samples

    def frame_symbols(self) -> int:
        """Symbol periods of the frames sent (preamble, header section, payload section with its
        pilots); guard zeros and filter tails not counted."""
        return self.framer.frame_symbols

    def round_trips(self) -> dict:
        """Feedback heard: `feedback`, `requests` (more=True), and the round-trip time from an
        image's last burst leaving the framer to its feedback arriving, `rtt_mean_s`,
        `rtt_p95_s` (None before any)."""
        return self.framer.round_trips.summary()

    def dropped(self) -> int:
        """Symbol PDUs dropped (malformed, or K too large)."""
        return self.framer._drops.total
