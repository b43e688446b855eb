"""`rkdsc_semantic_rx`: symbol PDU (+ `snr_db`, optional `csi`) → decision PDU (logits, class),
and a feedback message per decision or increment (issue 18).

A thin adapter over `rkdsc_core.runtime.Receiver`: with `csi` the receiver equalises (MMSE, perfect
CSI) and hands the CAT decoder the effective per-symbol SNR; without it the symbols are taken as
already equalised and `snr_db` as their SNR. Batched like `semantic_tx` (one decoder call per K
and CSI kind in a batch); decisions leave in arrival order. PDUs carrying `ir_offset` are
increments of incremental redundancy, handled by `rkdsc_core.runtime.IRReceiver`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_core.runtime import IRIncrement, IRReceiver, load_bundle
from rkdsc_gr._feedback import (
    IR_FINAL,
    IR_GAIN,
    IR_KEYS,
    IR_OFFSET,
    PORT_FEEDBACK,
    HoldDone,
    feedback_message,
)
from rkdsc_gr._pdu import (
    CLASS,
    CLASS_NAME,
    CSI,
    INDEX,
    PORT_IN,
    PORT_OUT,
    RATE,
    SNR_DB,
    BadPdu,
    DropCounter,
    c32_array,
    guarded,
    make_pdu,
    meta_csi,
    meta_float,
    meta_int,
    meta_snr_db,
    split_pdu,
)
from rkdsc_gr._worker import PduWorker

PORT_TICK = pmt.intern("tick")

log = logging.getLogger(__name__)


class semantic_rx(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """CAT decoder + task head of a model bundle.

    Args:
        bundle: "default" or a bundle folder.
        device: torch device.
        snr_db: SNR (dB) assumed for PDUs without `snr_db` metadata; None drops such PDUs.
        max_batch: most PDUs per decoder call.
        confidence: incremental redundancy: stop asking once the bundle's stopping rule expects
            at most 1 − confidence accuracy gain from going on to K_max.
        timeout_s: incremental redundancy: an image whose next increment has not come this many
            seconds after its request is decided with what it has (lost request or increment).

    Input `in`: c32vector[K] (1 <= K <= k_max) with metadata `snr_db` (float, dB; the channel's
    average Es/N0 when `csi` is given, else the SNR of the equalised symbols) and optionally `csi`
    (c32vector[K] of channel gains, or one complex gain for the image).
    Output `out`: f32vector[C] logits; metadata = input metadata without `csi`, plus `class` (int)
    and `class_name`.
    Output `feedback`: one dict per decoded PDU with an `index`: index, snr_db (the SNR the PDU
    came with), confidence (max softmax; for increments 1 − the rule's expected gain), symbols
    (received for the image so far) and more (True: send the image's next increment).
    Increments (`ir_offset`, `ir_gain`, `ir_final` metadata, from `semantic_tx` with adapt "ir")
    are gathered per index; the decision leaves when the image is done, with `rate` = symbols.
    """

    def __init__(
        self,
        bundle: str = "default",
        device: str = "cpu",
        snr_db: float | None = None,
        max_batch: int = 256,
        confidence: float = 0.98,
        timeout_s: float = 2.0,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_semantic_rx", in_sig=None, out_sig=None)
        if not 0.0 < float(confidence) <= 1.0 or float(timeout_s) <= 0:
            raise ValueError(f"need 0 < confidence <= 1, timeout_s > 0: {confidence}, {timeout_s}")
        self._confidence, self._timeout = float(confidence), float(timeout_s)
        self._ir: IRReceiver | None = None
        self._ir_lock = threading.Lock()  # the worker thread and the timeout clock share it
        self._waiting: dict[int, tuple[float, pmt.pmt_t]] = {}  # index → (time asked, meta)
        self._counts = {"decisions": 0, "symbols": 0, "requests": 0, "feedback": 0, "timeouts": 0}
        self._counts["late"] = 0
        self._ticker: threading.Event | None = None
        self._bundle = load_bundle(bundle, device)
        self._rx = self._bundle.receiver()
        self._k_max = self._bundle.k_max
        self._class_names = [pmt.intern(str(c)) for c in self._bundle.classes]
        self._snr_db = None if snr_db is None else float(snr_db)
        self._drops = DropCounter(log, "semantic_rx")
        self._decoded = 0
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.message_port_register_out(PORT_FEEDBACK)
        self.message_port_register_in(PORT_TICK)
        self.set_msg_handler(PORT_TICK, self._tick)
        # after the transmitter is done, images waiting for increments time out first
        self._hold = HoldDone(lambda: bool(self._waiting), grace_s=3 * self._timeout)
        self._worker = PduWorker(
            self, self._parse, self._flush, self._drops, max_batch, hold=self._hold
        )

    def counts(self) -> dict:
        """{decisions, symbols (received, all decisions), requests (more=True feedback sent),
        feedback (messages sent), timeouts (images decided by the timeout), late (increments
        ignored: their image was decided already or its first increment never came)}."""
        return dict(self._counts)

    def waiting(self) -> int:
        """Images waiting for a further increment (each decided by its timeout at the latest)."""
        return len(self._waiting)

    def set_snr_db(self, snr_db: float | None) -> None:
        self._snr_db = None if snr_db is None else float(snr_db)

    def decoded(self) -> int:
        """Decision PDUs sent so far."""
        return self._decoded

    def dropped(self) -> int:
        """Input PDUs dropped so far (malformed, or the decoder failed)."""
        return self._drops.total

    def start(self) -> bool:
        """Starts the worker and the timeout clock (a thread posting to the `tick` port)."""
        self._ticker = threading.Event()
        port, me, stop = PORT_TICK, self.to_basic_block(), self._ticker

        def clock():
            while not stop.wait(self._timeout / 4):
                me._post(port, pmt.PMT_T)

        threading.Thread(target=clock, name="semantic_rx tick", daemon=True).start()
        self._worker.start()
        return True

    def stop(self) -> bool:
        if self._ticker is not None:
            self._ticker.set()
        self._worker.stop()
        self._drops.summary()
        return True

    @guarded
    def _tick(self, _msg) -> None:
        """Decide the images whose next increment is overdue."""
        now = time.monotonic()
        with self._ir_lock:
            for index, (asked, meta) in list(self._waiting.items()):
                if now - asked >= self._timeout:
                    del self._waiting[index]
                    dec = self._ir.expire(index) if self._ir else None
                    if dec is not None:
                        self._hold.touch()
                        self._counts["timeouts"] += 1
                        self._publish_ir(meta, dec)

    def _parse(self, msg: pmt.pmt_t) -> tuple[pmt.pmt_t, np.ndarray, float, np.ndarray | None]:
        meta, vec = split_pdu(msg)
        y = c32_array(vec, "symbol PDU", self._k_max)
        snr = meta_snr_db(meta)
        if snr is None:
            snr = self._snr_db
        if snr is None:
            raise BadPdu("symbol PDU has no 'snr_db' metadata (and the block sets none)")
        if meta_int(meta, IR_OFFSET) is not None and meta_int(meta, INDEX) is None:
            raise BadPdu("an increment (ir_offset) needs an 'index'")
        return meta, y, snr, meta_csi(meta, len(y))

    def _flush(self, batch: list) -> None:
        increments = [it for it in batch if pmt.dict_has_key(it[0], IR_OFFSET)]
        if increments:
            self._flush_ir(increments)
            batch = [it for it in batch if not pmt.dict_has_key(it[0], IR_OFFSET)]
        groups = defaultdict(list)  # one decoder call per (K, with csi): positions in the batch
        for pos, item in enumerate(batch):
            groups[(len(item[1]), item[3] is not None)].append(pos)
        decided: list[tuple[int, np.ndarray] | None] = [None] * len(batch)
        for (_, with_csi), where in groups.items():
            items = [batch[p] for p in where]
            try:
                y = np.stack([it[1] for it in items])
                snr = np.array([it[2] for it in items], dtype=np.float32)
                h = np.stack([it[3] for it in items]) if with_csi else None
                classes, logits = self._rx.classify(y, snr, csi=h)
            except Exception as exc:  # noqa: BLE001 - drop the group, keep the block alive
                self._drops.drop(f"decoder failed: {type(exc).__name__}: {exc}", len(items), True)
                continue
            finite = np.isfinite(logits).all(1)
            if not finite.all():  # never a decision from NaN logits (issue 21, row 8)
                self._drops.drop("decoder gave non-finite logits", int((~finite).sum()))
            for p, cls, lg, ok in zip(where, classes, logits, finite):
                if ok:
                    decided[p] = (int(cls), lg.astype(np.float32))
        for (meta, y, snr, _), out in zip(batch, decided):  # in arrival order
            if out is None:
                continue
            cls, lg = out
            self._decide(meta, cls, lg, len(y))
            index = meta_int(meta, INDEX)
            if index is not None:
                conf = float(_max_softmax(lg))
                self._feedback(feedback_message(index, snr, conf, len(y), more=False))

    def _decide(self, meta: pmt.pmt_t, cls: int, logits: np.ndarray, symbols: int) -> None:
        for key in (CSI, *IR_KEYS):
            if pmt.dict_has_key(meta, key):
                meta = pmt.dict_delete(meta, key)
        meta = pmt.dict_add(meta, CLASS, pmt.from_long(cls))
        meta = pmt.dict_add(meta, CLASS_NAME, self._class_names[cls])
        self.message_port_pub(PORT_OUT, make_pdu(meta, logits.astype(np.float32)))
        self._decoded += 1
        self._counts["decisions"] += 1
        self._counts["symbols"] += int(symbols)

    def _feedback(self, msg: pmt.pmt_t) -> None:
        self.message_port_pub(PORT_FEEDBACK, msg)
        self._counts["feedback"] += 1

    def _flush_ir(self, batch) -> None:
        """Increments → IRReceiver; a decision for the images done, a request for the rest."""
        if self._ir is None:
            try:
                self._ir = IRReceiver(self._bundle, self._confidence)
            except ValueError as exc:
                self._drops.drop(f"increments need a stopping rule: {exc}", len(batch))
                return
        items = []
        for meta, y, snr, h in batch:
            final = pmt.dict_ref(meta, IR_FINAL, pmt.PMT_F)
            items.append(
                IRIncrement(
                    index=meta_int(meta, INDEX),
                    offset=meta_int(meta, IR_OFFSET),
                    gain=meta_float(meta, IR_GAIN) or 1.0,
                    y=y,
                    snr_db=snr,
                    csi=h,
                    final=pmt.is_true(final),
                )
            )
        with self._ir_lock:
            try:
                decisions = self._ir.receive(items)
            except Exception as exc:  # noqa: BLE001 - drop the batch, keep the block alive
                why = f"IR decoder failed: {type(exc).__name__}: {exc}"
                self._drops.drop(why, len(items), True)
                return
            now = time.monotonic()
            self._hold.touch()
            for (meta, _, snr, _), dec in zip(batch, decisions):
                if dec is None:  # its image was decided already (timeout), or its start was lost
                    self._counts["late"] += 1
                    continue
                self._waiting.pop(dec.index, None)
                if dec.done:
                    self._publish_ir(meta, dec)
                else:
                    self._waiting[dec.index] = (now, meta)
                    self._counts["requests"] += 1
                    msg = feedback_message(dec.index, snr, dec.confidence, dec.symbols, True)
                    self._feedback(msg)

    def _publish_ir(self, meta: pmt.pmt_t, dec) -> None:
        meta = pmt.dict_add(meta, RATE, pmt.from_long(dec.symbols))
        self._decide(meta, int(np.argmax(dec.logits)), dec.logits, dec.symbols)
        snr = meta_float(meta, SNR_DB)
        snr = dec.snr_db if snr is None else snr
        self._feedback(feedback_message(dec.index, snr, dec.confidence, dec.symbols, False))


def _max_softmax(logits: np.ndarray) -> float:
    z = np.exp(logits - logits.max())
    return float(z.max() / z.sum())
