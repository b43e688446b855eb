"""`rkdsc_ota_rx`: IQ stream → one symbol PDU per image, with the *estimated* SNR, for
`semantic_rx`.

    in ─► [rotator: −if_offset] ─► fir_filter_ccf (RRC) ─┬─────────────────► ota_deframer ─► out
                                                          └► fft_filter_ccc ─┘
                                                  (correlation with one preamble repetition)

The stock blocks do the per-sample work (matched filter, correlation with one Zadoff–Chu
repetition). `ota_deframer` keeps a buffer of both streams, runs the non-coherent pre-detector
(`phy.Detector`: a few numpy passes per sample) and, per hit, `rkdsc_core.phy`'s receiver: the
coherent preamble metric over a CFO bank, the polar header, then the whole frame. A frame of N
images leaves as N PDUs. Candidates that fail (no preamble, header CRC, K or N out of range,
another bundle) are counted by reason and never passed on.

Frames of IR increments (a version-3 header with the increment flag) leave as increment PDUs
(`ir_offset`, `ir_final`: what `semantic_rx` gathers per image; no `ir_gain`, increments are
self-normalising). Each image also leaves a feedback dict on `feedback` (issue 18): the PHY's
view of it, for SNR-adaptive K without a decoder at the receiver.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pmt
from gnuradio import blocks, gr
from gnuradio import filter as grfilter

from rkdsc_core.phy import Acquisition, FrameReceiver, FrameRejected, RxFrame, rrc_taps
from rkdsc_core.phy.detect import Detector
from rkdsc_core.phy.header import MAX_IMAGES, MAX_RATE
from rkdsc_core.phy.preamble import repetition_template
from rkdsc_core.phy.sync import prescreen_metric
from rkdsc_gr._feedback import IR_FINAL, PORT_FEEDBACK, feedback_message
from rkdsc_gr._hier import init_hier
from rkdsc_gr._pdu import (
    BUNDLE_ID,
    FRAME_INDEX,
    IMAGES,
    PORT_OUT,
    RATE,
    SAMPLE_COUNT,
    SAMPLE_START,
    make_pdus,
)
from rkdsc_gr._stream_buffer import StreamBuffer
from rkdsc_gr.ota_tx import frame_config

log = logging.getLogger(__name__)

CFO = pmt.intern("cfo")
METRIC = pmt.intern("metric")
SCO = pmt.intern("sco")


@dataclass
class _Candidate:
    """A pre-detector hit (stream offset) and, once acquired, its state."""

    hit: int
    acq: Acquisition | None = None
    tau: int = 0  # stream offset of the preamble, once acquired


class ota_deframer(gr.sync_block):  # noqa: N801 - GNU Radio block naming
    """Matched-filter output (input 0) and its per-repetition correlation (input 1, from
    `fft_filter_ccc` with `repetition_template`) → one symbol PDU per image (see `ota_rx`).

    Its input is aligned with the receiver input (FIR outputs keep item indices), so
    `sample_start` in the metadata indexes the receiver input (and a recording of it). `labels`,
    when given, maps image index → label for the `label` metadata (frames do not carry labels).
    """

    def __init__(
        self,
        rx: FrameReceiver,
        bundle_id: int = -1,
        labels: Sequence[int] | None = None,
        detector_threshold: float = 2.3,
    ) -> None:
        gr.sync_block.__init__(
            self, name="rkdsc_ota_deframer", in_sig=[np.complex64, np.complex64], out_sig=None
        )
        self.rx = rx
        cfg = rx.cfg
        self.detector = Detector(cfg, detector_threshold)
        self._corr_delay = (cfg.zc_length - 1) * cfg.sps  # corr[n] = input 1 at n + this
        self._bundle_id = int(bundle_id)
        self._labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self._z = StreamBuffer()
        self._c = StreamBuffer()
        self._scan = 0  # next preamble start the detector has to look at
        self._pending: list[_Candidate] = []
        self._busy_until = 0  # earliest preamble start after the last frame decoded
        self._last_frame_index: int | None = None
        self.snr_db_sum = 0.0
        reasons = {r: 0 for r in FrameRejected.REASONS}
        self.stats = {
            "hits": 0,
            "candidates": 0,
            "frames": 0,
            "images": 0,
            **reasons,
            "bundle": 0,
            "missed_by_index": 0,
            "errors": 0,
        }
        self.message_port_register_out(PORT_OUT)
        self.message_port_register_out(PORT_FEEDBACK)

    def work(self, input_items, output_items):
        n = len(input_items[0])
        try:
            start = self.nitems_read(0)
            if self._z.end != start:  # first call (or a gap): restart the buffers here
                self._z.restart(start)
                self._c.restart(start)
                self._scan = max(self._scan, start)
            self._z.append(input_items[0])
            self._c.append(input_items[1])
            self._detect()
            self._run()
            keep = self._oldest_needed()
            self._z.keep_from(keep)
            self._c.keep_from(keep)
        except Exception:  # noqa: BLE001 - an exception escaping work() hangs the flowgraph
            self.stats["errors"] += 1
            log.exception("ota_rx: dropping state after an error")
            self._pending.clear()
            self._scan = self._z.end
        return n

    def _detect(self) -> None:
        """Run the pre-detector over every start whose samples are in; a group of hits that may
        continue past the samples in waits for the next call."""
        det, z, c = self.detector, self._z, self._c
        cfg = self.rx.cfg
        lo = max(self._scan, z.base)
        # a start τ needs z through τ + span and the correlation through τ + span − step
        hi = z.end - det.span - self._corr_delay - 1
        if hi <= lo:
            return
        zs = z.data[lo - z.base : hi - z.base + det.span]
        power = zs.real.astype(np.float64) ** 2 + zs.imag.astype(np.float64) ** 2
        csum = np.concatenate([[0.0], np.cumsum(power)])
        corr = c.data[lo - c.base + self._corr_delay : hi - c.base + self._corr_delay + det.span]
        metric = prescreen_metric(corr, csum, hi - lo, cfg.sps, cfg.zc_length, cfg.preamble_reps)
        above = np.flatnonzero(metric >= det.threshold)
        scan_to = hi
        if len(above) and above[-1] >= (hi - lo) - det.step:
            # the last group may go on: hold it (and what follows) back
            breaks = np.flatnonzero(np.diff(above) > det.step)
            first = above[breaks[-1] + 1] if len(breaks) else above[0]
            scan_to = lo + int(first)
            metric = metric[:first]
        for hit in det.hits(metric, lo):
            self.stats["hits"] += 1
            self._pending.append(_Candidate(int(hit)))
            self.stats["candidates"] += 1
        self._scan = scan_to

    def _oldest_needed(self) -> int:
        rx = self.rx
        margin = rx.lead + self.detector.span + 64
        oldest = min(self._scan, self._z.end) - margin
        if self._pending:
            cand = self._pending[0]
            first = cand.tau if cand.acq is not None else int(rx.candidates(cand.hit)[0])
            oldest = min(oldest, first - margin)
        return oldest

    def _run(self) -> None:
        """Process candidates in order while their samples are in."""
        rx, buf = self.rx, self._z
        while self._pending:
            cand = self._pending[0]
            if cand.acq is None:
                taus = rx.candidates(cand.hit)
                taus = taus[taus >= self._busy_until]  # not inside the frame decoded last
                if len(taus) == 0:
                    self._pending.pop(0)
                    continue
                if buf.end < taus[-1] + rx.acquire_span:
                    return
                try:
                    cand.acq = rx.acquire(buf.data, taus - buf.base)
                except FrameRejected as exc:
                    self.stats[exc.reason] += 1
                    self._pending.pop(0)
                    continue
                cand.tau = cand.acq.tau + buf.base
            h = cand.acq.header
            if buf.end < cand.tau + rx.frame_span(h.rate, h.images):
                return
            self._pending.pop(0)
            self._finish(cand)

    def _finish(self, cand: _Candidate) -> None:
        rx, buf = self.rx, self._z
        cand.acq.tau = cand.tau - buf.base  # the buffer may have moved on since acquire
        try:
            frame = rx.finish(buf.data, cand.acq)
        except FrameRejected as exc:
            self.stats[exc.reason] += 1
            return
        h = frame.header
        self._busy_until = cand.tau + rx.next_preamble(h)
        if self._bundle_id >= 0 and h.bundle_id != self._bundle_id:
            self.stats["bundle"] += 1
            return
        if self._last_frame_index is not None:
            self.stats["missed_by_index"] += (h.frame_index - self._last_frame_index - 1) % 256
        self._last_frame_index = h.frame_index
        self.stats["frames"] += 1
        self.stats["images"] += h.images
        self.snr_db_sum += frame.snr_db
        for pdu in self._image_pdus(frame, rx.burst_start(cand.tau)):
            self.message_port_pub(PORT_OUT, pdu)
        symbols = h.offset + h.rate  # of each image's code, received through this frame
        for i, snr in enumerate(frame.image_snr_db()):
            index = (h.image_index + i) % (1 << 24)
            msg = feedback_message(index, float(snr), float("nan"), symbols, more=False)
            self.message_port_pub(PORT_FEEDBACK, msg)

    def _image_pdus(self, frame: RxFrame, sample_start: int):
        """One PDU per image of `frame`."""
        h = frame.header
        count = self.rx.cfg.burst_samples(h.rate, h.images)
        snrs = frame.image_snr_db()
        common = pmt.make_dict()  # what the frame's images share (pmt dicts are persistent)
        for key, value in (
            (RATE, h.offset + h.rate),  # an increment's: the image's symbols so far
            (FRAME_INDEX, h.frame_index),
            (IMAGES, h.images),
            (BUNDLE_ID, h.bundle_id),
            (SAMPLE_START, sample_start),
            (SAMPLE_COUNT, count),
        ):
            common = pmt.dict_add(common, key, pmt.from_long(int(value)))
        for key, value in ((CFO, frame.cfo), (METRIC, frame.metric), (SCO, frame.sco)):
            common = pmt.dict_add(common, key, pmt.from_double(float(value)))
        fields = []
        for i in range(h.images):
            index = (h.image_index + i) % (1 << 24)
            own = {"index": index, "image_pos": i, "snr_db": float(snrs[i])}
            if self._labels is not None and index < len(self._labels):
                own["label"] = int(self._labels[index])
            if h.increment:
                own["ir_offset"] = h.offset
            fields.append(own)
        pdus = make_pdus(common, fields, frame.symbols)
        if h.increment:  # a PMT bool (make_pdus writes numbers only)
            final = pmt.from_bool(bool(h.final))
            pdus = [pmt.cons(pmt.dict_add(pmt.car(p), IR_FINAL, final), pmt.cdr(p)) for p in pdus]
        return pdus

    def stop(self) -> bool:
        s = self.stats
        log.info(
            "ota_rx: %d frames (%d images); rejected: %d no preamble, %d header CRC, %d K, %d N, "
            "%d bundle; %d missed by frame index; %d errors",
            *(s[k] for k in ("frames", "images", "no_preamble", "header_crc", "rate", "n_images")),
            s["bundle"],
            s["missed_by_index"],
            s["errors"],
        )
        return True


RX_BUFFER_ITEMS = 1 << 16  # samples per buffer feeding the deframer


class ota_rx(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Over-the-air receiver: complex samples in, one equalised symbol PDU per image out.

    Args:
        sps, rolloff, pilot_spacing, guard: the waveform (as at `ota_tx`; N comes from headers).
        threshold: pre-detector threshold in units of its noise level (2.3: ~12 hits per 10^6
            noise samples; −10 dB preambles behind a 3-tap channel reach ≥ 2.56 in 99%).
        min_metric: coherent preamble metric a candidate needs (≈ SNR/(1+SNR); noise ≈ 0.002).
        doppler: f_D·T_s per symbol for tracking the gain through a frame (0: constant per frame).
        max_rate: largest K accepted (set it to the bundle's k_max).
        max_images: largest N accepted.
        bundle_id: accept only frames of this bundle id (−1: any).
        if_offset: the burst's carrier offset from the tuned frequency, cycles/sample (mixed down
            first; with a non-zero offset the radio's DC spike falls outside the signal band).
        labels: optional image index → label table for the `label` metadata an accuracy sink
            needs (frames carry no labels): a sequence, or a bundle ("default" or a folder)
            whose dataset's test split gives them ("" or None: no labels).
        max_sco_ppm: largest sample-clock offset searched per frame.

    Stream in: complex samples. Message out `out`: c32vector[K] of equalised payload symbols per
    image; metadata `index`, `rate`, `snr_db` (estimated effective Es/N0 of that image), `cfo`
    (cycles/sample), `sco`, `metric`, `frame_index`, `images` (N), `image_pos`, `bundle_id`,
    `sample_start` / `sample_count` (the burst in the input stream), and `label` when `labels`
    has it; frames of IR increments add `ir_offset` and `ir_final` (and `rate` is then offset +
    K, the image's symbols so far). Message out `feedback`: per image, the dict of
    `rkdsc_gr._feedback` with its index, estimated SNR, symbols received (offset + K) and
    confidence NaN (the PHY does not decide; `semantic_rx`'s feedback carries the decoder's, and
    its requests drive incremental redundancy). Accessor `stats()`: counts of pre-detector
    hits, candidates, frames, images and rejections by reason.
    """

    def __init__(
        self,
        sps: int = 4,
        rolloff: float = 0.35,
        pilot_spacing: int = 16,
        guard: int = 64,
        threshold: float = 2.3,
        min_metric: float = 0.045,
        doppler: float = 0.0,
        max_rate: int = MAX_RATE,
        bundle_id: int = -1,
        if_offset: float = 0.0,
        labels: Sequence[int] | str | None = None,
        max_images: int = MAX_IMAGES,
        max_sco_ppm: float = 100.0,
    ) -> None:
        init_hier(self, "rkdsc_ota_rx", stream_in=True, stream_out=False)
        if not threshold > 1.0:
            raise ValueError(f"threshold must be > 1 (units of the noise level), got {threshold}")
        cfg = frame_config(sps=sps, rolloff=rolloff, pilot_spacing=pilot_spacing, guard=guard)
        self.cfg = cfg
        if isinstance(labels, str):
            from rkdsc_gr.labels import bundle_labels

            labels = bundle_labels(labels) if labels else None
        self.receiver = FrameReceiver(
            cfg,
            min_metric=min_metric,
            doppler=doppler,
            max_rate=max_rate,
            max_images=max_images,
            max_sco_ppm=max_sco_ppm,
        )
        self.matched = grfilter.fir_filter_ccf(1, rrc_taps(cfg.sps, cfg.rolloff, cfg.span).tolist())
        self.correlator = grfilter.fft_filter_ccc(
            1, repetition_template(cfg.zc_length, cfg.sps).tolist()
        )
        self.deframer = ota_deframer(
            self.receiver,
            bundle_id=bundle_id,
            labels=labels,
            detector_threshold=threshold,
        )
        self.message_port_register_hier_out("out")
        self.message_port_register_hier_out("feedback")
        head = self.matched
        if if_offset:
            self.mixer = blocks.rotator_cc(-2 * math.pi * float(if_offset))
            self.connect(self, self.mixer, self.matched)
        else:
            self.connect(self, self.matched)
        # the deframer is Python: every work() call takes the interpreter lock, which the
        # transmitter's Python blocks hold too; larger chunks (up to 64k samples instead of GNU
        # Radio's default 4k) cut the calls 16x: receiver alone 1.3 -> 1.8 MS/s (bench_waveform)
        for blk in (self.matched, self.correlator):
            level = blk.log_level()  # GNU Radio logs the change at INFO on stdout: quietly
            blk.set_log_level("warn")
            blk.set_min_output_buffer(RX_BUFFER_ITEMS)
            blk.set_log_level(level)
        self.connect(head, (self.deframer, 0))
        self.connect(head, self.correlator, (self.deframer, 1))
        self.msg_connect(self.deframer, "out", self, "out")
        self.msg_connect(self.deframer, "feedback", self, "feedback")

    def stats(self) -> dict:
        """Counts: `hits` (pre-detector), `candidates`, `frames` and `images` passed on,
        rejections by reason (`no_preamble`, `header_crc`, `rate`, `n_images`, `bundle`,
        `short`), `missed_by_index` (gaps in the frame counter), `errors`, `samples_read`; and
        `snr_db_mean`, the mean estimated SNR over frames."""
        out = dict(self.deframer.stats)
        out["samples_read"] = self.deframer.nitems_read(0)
        frames = out["frames"]
        out["snr_db_mean"] = self.deframer.snr_db_sum / frames if frames else None
        return out

    def frames_received(self) -> int:
        return self.deframer.stats["frames"]

    def images_received(self) -> int:
        return self.deframer.stats["images"]
