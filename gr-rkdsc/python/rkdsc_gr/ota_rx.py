"""`rkdsc_ota_rx`: IQ stream → symbol PDUs with the *estimated* SNR, for `semantic_rx`.

    in ─► [rotator: −if_offset] ─► fir_filter_ccf (RRC) ─► corr_est_cc (first two preamble reps,
          dynamic threshold) ─► ota_deframer ─► out

The stock blocks do the per-sample work (matched filter, correlation); `ota_deframer` keeps a short
buffer, groups the detector's `corr_start` tags into candidates and runs `rkdsc_core.phy`'s
receiver once per candidate, vectorised over the frame. Candidates that fail (no preamble, header
CRC, oversized K, other bundle) are counted by reason and never passed on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import blocks, digital, gr
from gnuradio import filter as grfilter

from rkdsc_core.phy import NO_LABEL, Acquisition, FrameReceiver, FrameRejected, rrc_taps
from rkdsc_core.phy.preamble import detection_template
from rkdsc_gr._pdu import INDEX, LABEL, PORT_OUT, RATE, SNR_DB, make_pdu
from rkdsc_gr.ota_tx import BUNDLE_ID, FRAME_INDEX, SAMPLE_COUNT, SAMPLE_START, frame_config

log = logging.getLogger(__name__)

CFO = pmt.intern("cfo")
METRIC = pmt.intern("metric")
_CORR_START = pmt.intern("corr_start")


@dataclass
class _Candidate:
    """Detector hits of one would-be frame (stream offsets) and, once acquired, its state."""

    hits: list[int] = field(default_factory=list)
    acq: Acquisition | None = None
    tau: int = 0  # stream offset of the preamble, once acquired


class _Buffer:
    """The recent input: `data` complex64 with stream offset `base` of data[0]."""

    def __init__(self) -> None:
        self.data = np.zeros(0, dtype=np.complex64)
        self.base = 0

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def append(self, x: np.ndarray) -> None:
        self.data = np.concatenate([self.data, x])

    def keep_from(self, offset: int) -> None:
        cut = min(max(offset - self.base, 0), len(self.data))
        if cut:
            self.data = self.data[cut:].copy()
            self.base += cut


class ota_deframer(gr.sync_block):  # noqa: N801 - GNU Radio block naming
    """Matched-filter output with `corr_start` tags → symbol PDUs (see `ota_rx`).

    `delay` is how far this block's input lags the receiver input (the detector's history), so
    that `burst_start` in the metadata indexes the receiver input (and a recording of it).
    """

    def __init__(self, rx: FrameReceiver, delay: int, bundle_id: int = -1) -> None:
        gr.sync_block.__init__(self, name="rkdsc_ota_deframer", in_sig=[np.complex64], out_sig=None)
        self.rx = rx
        self._delay = int(delay)
        self._bundle_id = int(bundle_id)
        cfg = rx.cfg
        self._merge = 2 * cfg.zc_length * cfg.sps  # hits this close belong to one preamble
        self._buf = _Buffer()
        self._pending: list[_Candidate] = []
        self._busy_until = 0  # end of the last frame decoded: hits before it are its own echoes
        self._last_frame_index: int | None = None
        self.snr_db_sum = 0.0
        reasons = {r: 0 for r in FrameRejected.REASONS}
        self.stats = {
            "hits": 0,
            "candidates": 0,
            "frames": 0,
            **reasons,
            "bundle": 0,
            "missed_by_index": 0,
            "errors": 0,
        }
        self.message_port_register_out(PORT_OUT)

    def work(self, input_items, output_items):
        try:
            x = input_items[0]
            n = len(x)
            start = self.nitems_read(0)
            if self._buf.end != start:  # first call (or a gap): restart the buffer here
                self._buf = _Buffer()
                self._buf.base = start
            self._buf.append(x)
            for tag in self.get_tags_in_window(0, 0, n, _CORR_START):
                self._hit(int(tag.offset))
            self._run()
            self._buf.keep_from(self._oldest_needed())
        except Exception:  # noqa: BLE001 - an exception escaping work() hangs the flowgraph
            self.stats["errors"] += 1
            log.exception("ota_rx: dropping state after an error")
            self._pending.clear()
            return len(input_items[0])
        return n

    def _hit(self, offset: int) -> None:
        self.stats["hits"] += 1
        if offset < self._busy_until:
            return
        if self._pending and offset - self._pending[-1].hits[0] <= self._merge:
            self._pending[-1].hits.append(offset)
        else:
            self._pending.append(_Candidate([offset]))
            self.stats["candidates"] += 1

    def _oldest_needed(self) -> int:
        margin = self.rx.lead + 2 * self._merge
        if self._pending:
            return min(self._pending[0].hits) - margin
        return self._buf.end - margin

    def _run(self) -> None:
        """Process candidates in order while their samples are in."""
        rx, buf = self.rx, self._buf
        while self._pending:
            cand = self._pending[0]
            if cand.acq is None:
                # hits inside a frame decoded meanwhile are its own (sidelobes, data); a later
                # preamble's hits may have been grouped with them
                cand.hits = [h for h in cand.hits if h >= self._busy_until]
                if not cand.hits:
                    self._pending.pop(0)
                    continue
                taus = np.unique(np.concatenate([rx.candidates(h) for h in cand.hits]))
                if buf.end < taus[-1] + rx.acquire_span:
                    return
                try:
                    cand.acq = rx.acquire(buf.data, taus - buf.base)
                except FrameRejected as exc:
                    self.stats[exc.reason] += 1
                    self._pending.pop(0)
                    continue
                cand.tau = cand.acq.tau + buf.base
            if buf.end < cand.tau + rx.frame_span(cand.acq.header.rate):
                return
            self._pending.pop(0)
            self._finish(cand)

    def _finish(self, cand: _Candidate) -> None:
        rx, buf = self.rx, self._buf
        cand.acq.tau = cand.tau - buf.base  # the buffer may have moved on since acquire
        try:
            frame = rx.finish(buf.data, cand.acq)
        except FrameRejected as exc:
            self.stats[exc.reason] += 1
            return
        h = frame.header
        self._busy_until = cand.tau + rx.frame_span(h.rate)
        if self._bundle_id >= 0 and h.bundle_id != self._bundle_id:
            self.stats["bundle"] += 1
            return
        if self._last_frame_index is not None:
            self.stats["missed_by_index"] += (h.frame_index - self._last_frame_index - 1) % 65536
        self._last_frame_index = h.frame_index
        self.stats["frames"] += 1
        self.snr_db_sum += frame.snr_db
        meta = pmt.make_dict()
        ints = (
            (INDEX, h.image_index),
            (RATE, h.rate),
            (FRAME_INDEX, h.frame_index),
            (BUNDLE_ID, h.bundle_id),
            (SAMPLE_START, rx.burst_start(cand.tau) - self._delay),
            (SAMPLE_COUNT, rx.cfg.burst_samples(h.rate)),
        )
        for key, value in ints:
            meta = pmt.dict_add(meta, key, pmt.from_long(int(value)))
        if h.label != NO_LABEL:
            meta = pmt.dict_add(meta, LABEL, pmt.from_long(h.label))
        for key, value in ((SNR_DB, frame.snr_db), (CFO, frame.cfo), (METRIC, frame.metric)):
            meta = pmt.dict_add(meta, key, pmt.from_double(float(value)))
        self.message_port_pub(PORT_OUT, make_pdu(meta, frame.symbols))

    def stop(self) -> bool:
        s = self.stats
        log.info(
            "ota_rx: %d frames; rejected: %d no preamble, %d header CRC, %d K, %d bundle; "
            "%d missed by frame index; %d errors",
            *(s[k] for k in ("frames", "no_preamble", "header_crc", "rate", "bundle")),
            s["missed_by_index"],
            s["errors"],
        )
        return True


class ota_rx(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Over-the-air receiver: complex samples in, equalised symbol PDUs out.

    Args:
        sps, rolloff, pilot_spacing, guard: the waveform (as at `ota_tx`).
        threshold: `corr_est_cc` dynamic threshold (1 − false-alarm probability, roughly); the
            receiver's own preamble metric and the header CRC weed out false hits.
        min_metric: preamble metric a candidate needs (≈ SNR/(1+SNR); 0.2 ≈ −6 dB).
        doppler: f_D·T_s per symbol for tracking the gain through a frame (0: constant per frame).
        max_rate: largest K accepted.
        bundle_id: accept only frames of this bundle id (−1: any).
        if_offset: the burst's carrier offset from the tuned frequency, cycles/sample (mixed down
            first; with a non-zero offset the radio's DC spike falls outside the signal band).

    Stream in: complex samples. Message out `out`: c32vector[K] of equalised payload symbols;
    metadata `index`, `label` (when sent), `rate`, `snr_db` (estimated effective Es/N0), `cfo`
    (cycles/sample), `metric`, `frame_index`, `bundle_id`, `sample_start` / `sample_count` (the
    burst in the input stream). Accessor `stats()`: counts of detector hits, candidates, frames
    and rejections by reason.
    """

    def __init__(
        self,
        sps: int = 4,
        rolloff: float = 0.35,
        pilot_spacing: int = 16,
        guard: int = 64,
        threshold: float = 0.999,
        min_metric: float = 0.2,
        doppler: float = 0.0,
        max_rate: int = 4095,
        bundle_id: int = -1,
        if_offset: float = 0.0,
    ) -> None:
        gr.hier_block2.__init__(
            self,
            "rkdsc_ota_rx",
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
            gr.io_signature(0, 0, 0),
        )
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        cfg = frame_config(sps, rolloff, pilot_spacing, 9.0, guard)
        self.cfg = cfg
        self.receiver = FrameReceiver(
            cfg, min_metric=min_metric, doppler=doppler, max_rate=max_rate
        )
        template = detection_template(cfg.zc_length, cfg.preamble_reps, cfg.sps)
        self.matched = grfilter.fir_filter_ccf(1, rrc_taps(cfg.sps, cfg.rolloff, cfg.span).tolist())
        self.detector = digital.corr_est_cc(
            template.tolist(), cfg.sps, 0, float(threshold), digital.THRESHOLD_DYNAMIC
        )
        # corr_est_cc delays its output by the template length (its history)
        self.deframer = ota_deframer(self.receiver, delay=len(template), bundle_id=bundle_id)
        self.message_port_register_hier_out("out")
        head = self.matched
        if if_offset:
            self.mixer = blocks.rotator_cc(-2 * math.pi * float(if_offset))
            self.connect(self, self.mixer, self.matched)
        else:
            self.connect(self, self.matched)
        self.connect(head, self.detector, self.deframer)
        self.msg_connect(self.deframer, "out", self, "out")

    def stats(self) -> dict:
        """Counts: `hits` (detector tags), `candidates`, `frames` passed on, rejections by reason
        (`no_preamble`, `header_crc`, `rate`, `bundle`, `short`), `missed_by_index` (gaps in the
        frame counter), `errors`, `samples_read`; and `snr_db_mean`, the mean estimated SNR."""
        out = dict(self.deframer.stats)
        out["samples_read"] = self.deframer.nitems_read(0)
        frames = out["frames"]
        out["snr_db_mean"] = self.deframer.snr_db_sum / frames if frames else None
        return out

    def frames_received(self) -> int:
        return self.deframer.stats["frames"]
