"""`rkdsc_rf_link`: the complex-baseband link between a waveform transmitter and receiver.

Modes: `sim` (GNU Radio's `channels.channel_model`: AWGN at an Es/N0, CFO, timing ratio, static
taps), `loopback` (a wire), `uhd` (USRP sink + source) and `soapy` (SoapySDR sink + source, e.g.
HackRF). The channel is built by `_channel_blocks`, the radios by `rkdsc_gr.radios` (the same
tuning and gain rules as `rkdsc tx` / `rkdsc rx`): a driver module is imported only when its mode
is chosen; with no radio attached the constructor raises RuntimeError (`radios.NoRadio`).
"""

from __future__ import annotations

import logging

from gnuradio import blocks, gr

from rkdsc_core.errors import check_choice
from rkdsc_gr import _channel_blocks
from rkdsc_gr._hier import init_hier
from rkdsc_gr.radios import RadioConfig, radio_sink, radio_source, set_frequency, set_gain

log = logging.getLogger(__name__)

MODES = ("sim", "loopback", "uhd", "soapy")


class rf_link(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """complex stream in (to the air) → complex stream out (from the air).

    Args:
        mode: "sim", "loopback", "uhd" or "soapy".
        snr_db: sim: Es/N0 in dB relative to `signal_power`; runtime `set_snr`.
        signal_power: sim: average power of the samples entering the link.
        freq_offset: sim: carrier offset, normalised to the sample rate; `set_freq_offset`.
        epsilon: sim: sample-clock ratio (1.0 = none).
        taps: sim: static multipath taps.
        seed: sim: noise seed.
        device: uhd: device address ("" = first found); soapy: "driver=hackrf[,serial=…]".
        samp_rate, center_freq, tx_gain, rx_gain: radio settings (uhd, soapy); setters for the
            frequency and gains.

    In `sim` mode, the output is the input advanced by 3 samples, and the last 8 to 15 samples
    given are held back until more arrive (channel_model's resampler and volk alignment) — align
    by correlation, as a receiver must, and follow a burst with some zeros.
    """

    def __init__(
        self,
        mode: str = "sim",
        snr_db: float = 20.0,
        signal_power: float = 1.0,
        freq_offset: float = 0.0,
        epsilon: float = 1.0,
        taps: tuple = (1.0 + 0.0j,),
        seed: int = 0,
        device: str = "",
        samp_rate: float = 1e6,
        center_freq: float = 915e6,
        tx_gain: float = 0.0,
        rx_gain: float = 0.0,
    ) -> None:
        init_hier(self, "rkdsc_rf_link", stream_in=True, stream_out=True)
        check_choice("mode", mode, MODES)
        self.mode = mode
        self._signal_power = float(signal_power)
        self._sim = self._sink = self._source = None
        self._device = device
        if mode == "sim":
            self._sim = _channel_blocks.channel_model(
                snr_db, self._signal_power, freq_offset, epsilon, taps, seed
            )
            self.connect(self, self._sim, self)
        elif mode == "loopback":
            wire = blocks.copy(gr.sizeof_gr_complex)
            self.connect(self, wire, self)
        else:
            if mode == "soapy" and not device.startswith("driver="):
                raise ValueError(f"soapy mode needs device='driver=NAME[,…]', got {device!r}")
            self._sink = radio_sink(mode, RadioConfig(samp_rate, center_freq, tx_gain, device))
            self._source = radio_source(mode, RadioConfig(samp_rate, center_freq, rx_gain, device))
            self.connect(self, self._sink)
            self.connect(self._source, self)

    def set_snr(self, snr_db: float) -> None:
        if self._sim is not None:
            _channel_blocks.set_snr(self._sim, snr_db, self._signal_power)

    def set_freq_offset(self, freq_offset: float) -> None:
        if self._sim is not None:
            self._sim.set_frequency_offset(float(freq_offset))

    def set_center_freq(self, freq: float) -> None:
        if self._sink is not None:
            set_frequency(self._sink, self.mode, freq)
            set_frequency(self._source, self.mode, freq)

    def set_tx_gain(self, gain: float) -> None:
        if self._sink is not None:
            set_gain(self._sink, self.mode, self._device, gain, tx=True)

    def set_rx_gain(self, gain: float) -> None:
        if self._source is not None:
            set_gain(self._source, self.mode, self._device, gain, tx=False)
