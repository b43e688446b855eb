"""`rkdsc_semantic_rx`: symbol PDU (+ `snr_db`, optional `csi`) → decision PDU (logits, class).

A thin adapter over `rkdsc_core.runtime.Receiver`: with `csi` the receiver equalises (MMSE, perfect
CSI) and hands the CAT decoder the effective per-symbol SNR; without it the symbols are taken as
already equalised and `snr_db` as their SNR. Batched like `semantic_tx` (one decoder call per K
and CSI kind in a batch); decisions leave in arrival order.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_core.runtime import load_bundle
from rkdsc_gr._pdu import (
    CLASS,
    CLASS_NAME,
    CSI,
    PORT_IN,
    PORT_OUT,
    BadPdu,
    DropCounter,
    c32_array,
    make_pdu,
    meta_csi,
    meta_snr_db,
    split_pdu,
)
from rkdsc_gr._worker import PduWorker

log = logging.getLogger(__name__)


class semantic_rx(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """CAT decoder + task head of a model bundle.

    Args:
        bundle: "default" or a bundle folder.
        device: torch device.
        snr_db: SNR (dB) assumed for PDUs without `snr_db` metadata; None drops such PDUs.
        max_batch: most PDUs per decoder call.

    Input `in`: c32vector[K] (1 <= K <= k_max) with metadata `snr_db` (float, dB; the channel's
    average Es/N0 when `csi` is given, else the SNR of the equalised symbols) and optionally `csi`
    (c32vector[K] of channel gains, or one complex gain for the image).
    Output `out`: f32vector[C] logits; metadata = input metadata without `csi`, plus `class` (int)
    and `class_name`.
    """

    def __init__(
        self,
        bundle: str = "default",
        device: str = "cpu",
        snr_db: float | None = None,
        max_batch: int = 256,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_semantic_rx", in_sig=None, out_sig=None)
        self._bundle = load_bundle(bundle, device)
        self._rx = self._bundle.receiver()
        self._k_max = self._bundle.k_max
        self._class_names = [pmt.intern(str(c)) for c in self._bundle.classes]
        self._snr_db = None if snr_db is None else float(snr_db)
        self._drops = DropCounter(log, "semantic_rx")
        self._decoded = 0
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self._worker = PduWorker(self, self._parse, self._flush, self._drops, max_batch)

    def set_snr_db(self, snr_db: float | None) -> None:
        self._snr_db = None if snr_db is None else float(snr_db)

    def decoded(self) -> int:
        """Decision PDUs sent so far."""
        return self._decoded

    def dropped(self) -> int:
        """Input PDUs dropped so far (malformed, or the decoder failed)."""
        return self._drops.total

    def start(self) -> bool:
        self._worker.start()
        return True

    def stop(self) -> bool:
        self._worker.stop()
        self._drops.summary()
        return True

    def _parse(self, msg: pmt.pmt_t) -> tuple[pmt.pmt_t, np.ndarray, float, np.ndarray | None]:
        meta, vec = split_pdu(msg)
        y = c32_array(vec, "symbol PDU", self._k_max)
        snr = meta_snr_db(meta)
        if snr is None:
            snr = self._snr_db
        if snr is None:
            raise BadPdu("symbol PDU has no 'snr_db' metadata (and the block sets none)")
        return meta, y, snr, meta_csi(meta, len(y))

    def _flush(self, batch: list) -> None:
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
        for (meta, _, _, h), out in zip(batch, decided):  # in arrival order
            if out is None:
                continue
            cls, lg = out
            if h is not None:
                meta = pmt.dict_delete(meta, CSI)
            meta = pmt.dict_add(meta, CLASS, pmt.from_long(cls))
            meta = pmt.dict_add(meta, CLASS_NAME, self._class_names[cls])
            self.message_port_pub(PORT_OUT, make_pdu(meta, lg))
            self._decoded += 1
