"""`rkdsc_keyed_channel`: symbol PDUs through the keyed channel draws that `rkdsc eval` uses.

A thin adapter over `rkdsc_core.channels.draws` (issue 19): the gains and noise of each image are
drawn from (seed, channel, SNR, the PDU's `index`), so a symbol-level loopback through this block
sees exactly the channel every offline method saw at that point. `rkdsc_symbol_channel` runs GNU
Radio's own channel blocks instead (their own, independent draws). An increment of incremental
redundancy (`ir_offset` metadata, issue 18) meets the draws of its own symbol positions.
"""

from __future__ import annotations

import logging

import numpy as np
import pmt
import torch
from gnuradio import gr

from rkdsc_core.channels import apply_keyed, make_channel
from rkdsc_gr._feedback import IR_OFFSET
from rkdsc_gr._pdu import (
    CSI,
    INDEX,
    PORT_IN,
    PORT_OUT,
    SNR_DB,
    BadPdu,
    DropCounter,
    c32_array,
    guarded,
    make_pdu,
    meta_int,
    split_pdu,
    to_vector,
)

log = logging.getLogger(__name__)


class keyed_channel(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Flat channel for symbol PDUs with the evaluation's keyed draws and true CSI.

    Args:
        channel: a name of the channel registry, `rkdsc_core.channels.list_channels()`.
        snr_db: Es/N0 in dB (unit-power symbols in); runtime `set_snr`.
        seed: the evaluation seed (`rkdsc eval --seed`).
        fd_ts, k_factor: Doppler of "rayleigh_fast", K-factor of "rician".
        max_symbols: longest PDU accepted.

    Input `in`: c32vector[K] symbol PDUs with integer metadata `index` (the image's index in its
    split, as `rkdsc_image_source` sets it) and, for an IR increment, `ir_offset` (its first
    symbol's position in the image's code: it gets the draws of positions ir_offset..+K).
    Output `out`: the received c32vector[K] (not equalised), metadata plus `snr_db` and `csi`
    (c32vector[K] true gains).
    """

    def __init__(
        self,
        channel: str = "awgn",
        snr_db: float = 10.0,
        seed: int = 0,
        fd_ts: float = 0.01,
        k_factor: float = 4.0,
        max_symbols: int = 4096,
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_keyed_channel", in_sig=None, out_sig=None)
        params = {"rayleigh_fast": {"fd_ts": fd_ts}, "rician": {"k_factor": k_factor}}
        self._channel = make_channel(channel, **params.get(channel, {}))
        self._snr_db = float(snr_db)
        self._seed = int(seed)
        self._max_symbols = int(max_symbols)
        self._drops = DropCounter(log, "keyed_channel")
        self.message_port_register_in(PORT_IN)
        self.message_port_register_out(PORT_OUT)
        self.set_msg_handler(PORT_IN, self._handle)

    def set_snr(self, snr_db: float) -> None:
        """New Es/N0 (dB) for the PDUs handled from now on."""
        self._snr_db = float(snr_db)

    def dropped(self) -> int:
        """Input PDUs dropped (malformed, or without `index`)."""
        return self._drops.total

    def stop(self) -> bool:
        self._drops.summary()
        return True

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        meta, vec = split_pdu(msg)
        x = c32_array(vec, "symbol PDU", self._max_symbols)
        index = meta_int(meta, INDEX)
        if index is None or index < 0:
            raise BadPdu(
                "symbol PDU has no non-negative integer 'index' (the draws are keyed by it)"
            )
        snr = self._snr_db
        offset = meta_int(meta, IR_OFFSET) or 0
        if offset < 0 or offset + len(x) > self._max_symbols:
            raise BadPdu(f"ir_offset {offset} outside 0..{self._max_symbols - len(x)}")
        # symbols before the offset were sent earlier: zeros here, so these meet their own draws
        x_full = np.concatenate([np.zeros(offset, np.complex64), x])
        out = apply_keyed(self._channel, torch.from_numpy(x_full[None]), snr, [index], self._seed)
        y = out.y[0, offset:].numpy().astype(np.complex64)
        h = out.h[0, offset:].numpy().astype(np.complex64)
        meta = pmt.dict_add(meta, SNR_DB, pmt.from_double(snr))
        meta = pmt.dict_add(meta, CSI, to_vector(h))
        self.message_port_pub(PORT_OUT, make_pdu(meta, y))
