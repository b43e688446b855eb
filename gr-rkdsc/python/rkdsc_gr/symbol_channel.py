"""`rkdsc_symbol_channel`: symbol PDUs through GNU Radio's own channel blocks at symbol rate.

  in ► feeder ┄► source ─┬───────────────────────► × ► channel_model ► collector ► out
                         └► 1 ► fading_model ► [hold] ─┤                      ▲ csi
                                                       └► skiphead(3) ────────┘
The fading branch exists for fading channels only; the hold keeps one h per image (its control
stream is the source's second output). Feeder and source share a deque (see `_symbol_stream`).

Rayleigh / Rician gains come from `channels.fading_model` run on a stream of ones, so the true
per-symbol gains are known and travel with each PDU as `csi`; `semantic_rx` equalises with them
(perfect CSI, as `rkdsc eval`). Block fading samples the fading process at the first symbol of each
image and holds it (`sample_and_hold_ff` on I and Q); `rayleigh_fast` uses it symbol by symbol.
"""

from __future__ import annotations

import logging
from collections import deque

from gnuradio import blocks, gr

from rkdsc_core.errors import check_choice
from rkdsc_gr import _channel_blocks
from rkdsc_gr._hier import init_hier
from rkdsc_gr._symbol_stream import LEAD, symbol_collector, symbol_feeder, symbol_source

log = logging.getLogger(__name__)

#: The channels this block implements: every name of `rkdsc_core.channels.CHANNELS`, the registry
#: (tests/gr/test_channel_names.py checks this tuple and the GRC enum against it).
CHANNELS = ("awgn", "rayleigh", "rayleigh_fast", "rician")
BLOCK_FDTS = 0.3  # Doppler of the process sampled once per image: successive images ≈ independent
NOISE_BUFFER = 512  # items; GNU Radio's smallest buffer for complex samples (one 4 KiB page)


class symbol_channel(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Flat channel for symbol PDUs: AWGN, or Rayleigh/Rician fading + AWGN, with true CSI.

    Args:
        channel: "awgn", "rayleigh" (one h per image), "rayleigh_fast" (h per symbol, Doppler
            `fd_ts`) or "rician" (one h per image, K-factor `k_factor`).
        snr_db: Es/N0 in dB (unit-power symbols in); runtime `set_snr`.
        fd_ts: normalised Doppler f_D·T_s per symbol for "rayleigh_fast"; runtime `set_fd_ts`.
        k_factor: Rician K (LOS / scattered power) for "rician".
        seed: seed of the noise (and, + 1, of the fading).
        max_symbols: longest PDU accepted.

    Input `in`: c32vector[K] symbol PDUs. Output `out`: the received c32vector[K], metadata
    plus `snr_db` (the channel's Es/N0) and, for fading channels, `csi` (c32vector[K] gains).
    """

    def __init__(
        self,
        channel: str = "awgn",
        snr_db: float = 10.0,
        fd_ts: float = 0.01,
        k_factor: float = 4.0,
        seed: int = 0,
        max_symbols: int = 4096,
    ) -> None:
        init_hier(self, "rkdsc_symbol_channel", stream_in=False, stream_out=False)
        check_choice("channel", channel, CHANNELS)
        if not 0.0 <= fd_ts <= 0.5:
            raise ValueError(f"fd_ts must be in [0, 0.5] cycles per symbol, got {fd_ts}")
        if k_factor < 0:
            raise ValueError(f"k_factor must be >= 0, got {k_factor}")
        self.message_port_register_hier_in("in")
        self.message_port_register_hier_out("out")
        self.channel = channel
        fading = channel != "awgn"
        hold = channel in ("rayleigh", "rician")
        fifo: deque = deque()
        chunks: deque = deque()
        self.feeder = symbol_feeder(fifo, chunks, snr_db, max_symbols, hold, keeps_csi=False)
        self.source = symbol_source(chunks, with_ctl=hold)
        self.collector = symbol_collector(fifo, with_csi=fading)
        self._noise = _channel_blocks.channel_model(snr_db, seed=seed)
        # channel_model's noise source runs ahead of the signal by a whole buffer; a small one
        # makes set_snr take effect within ~512 symbols instead of ~8k
        self._noise.set_max_output_buffer(NOISE_BUFFER)
        to_stream = (self.source, 0)
        self.msg_connect(self, "in", self.feeder, "in")
        self.msg_connect(self.feeder, "wake", self.source, "wake")
        self.msg_connect(self.collector, "out", self, "out")
        self._fader = None
        if not fading:
            self.connect(to_stream, self._noise, self.collector)
            return
        fd_ts_symbol = BLOCK_FDTS if hold else fd_ts
        self._fader = _channel_blocks.fading_model(
            fd_ts_symbol, channel == "rician", k_factor, seed
        )
        zero = blocks.multiply_const_cc(0.0)
        one = blocks.add_const_cc(1.0)
        self.connect(to_stream, zero, one, self._fader)
        gains = self._fader
        if hold:
            gains = self._hold(self._fader)
        apply = blocks.multiply_cc()
        self.connect(to_stream, (apply, 0))
        self.connect(gains, (apply, 1))
        self.connect(apply, self._noise, (self.collector, 0))
        self.connect(gains, blocks.skiphead(gr.sizeof_gr_complex, LEAD), (self.collector, 1))

    def _hold(self, fader) -> gr.basic_block:
        """Hold the fading gain of each image's first symbol (control stream from the source)."""
        ctl = (self.source, 1)
        split = blocks.complex_to_float()
        hold_i, hold_q = blocks.sample_and_hold_ff(), blocks.sample_and_hold_ff()
        join = blocks.float_to_complex()
        self.connect(fader, split)
        for k, hold in enumerate((hold_i, hold_q)):
            self.connect((split, k), (hold, 0))
            self.connect(ctl, (hold, 1))
            self.connect(hold, (join, k))
        return join

    def set_snr(self, snr_db: float) -> None:
        """New Es/N0 (dB). PDUs fed from now on carry it in `snr_db`; the noise follows within
        ~512 symbols (noise already generated into channel_model's buffer keeps the old level)."""
        _channel_blocks.set_snr(self._noise, snr_db)
        self.feeder.set_snr(snr_db)

    def set_fd_ts(self, fd_ts: float) -> None:
        """New Doppler for "rayleigh_fast" (other channels: logged and ignored)."""
        if self.channel != "rayleigh_fast":
            log.warning(
                "symbol_channel: fd_ts applies to rayleigh_fast only (channel %s)", self.channel
            )
            return
        self._fader.set_fDTs(float(fd_ts))

    def dropped(self) -> int:
        """Input PDUs dropped (malformed)."""
        return self.feeder.dropped()

    def stray(self) -> int:
        """Received samples not matched to a PDU (0 unless alignment was lost)."""
        return self.collector.stray()
