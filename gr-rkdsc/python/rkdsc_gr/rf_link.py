"""`rkdsc_rf_link`: the complex-baseband link between a waveform transmitter and receiver.

Modes: `sim` (GNU Radio's `channels.channel_model`: AWGN at an Es/N0, CFO, timing ratio, static
taps), `loopback` (a wire), `uhd` (USRP sink + source) and `soapy` (SoapySDR sink + source, e.g.
HackRF). A driver module is imported only when its mode is chosen; with no radio attached its
constructor raises RuntimeError.
"""

from __future__ import annotations

import logging

from gnuradio import blocks, channels, gr

from rkdsc_core.channels import noise_voltage

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
        sig = gr.io_signature(1, 1, gr.sizeof_gr_complex)
        gr.hier_block2.__init__(self, "rkdsc_rf_link", sig, sig)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._signal_power = float(signal_power)
        self._sim = self._sink = self._source = None
        if mode == "sim":
            self._sim = channels.channel_model(
                noise_voltage=noise_voltage(snr_db, self._signal_power),
                frequency_offset=float(freq_offset),
                epsilon=float(epsilon),
                taps=[complex(t) for t in taps],
                noise_seed=int(seed),
                block_tags=False,
            )
            self.connect(self, self._sim, self)
        elif mode == "loopback":
            wire = blocks.copy(gr.sizeof_gr_complex)
            self.connect(self, wire, self)
        elif mode == "uhd":
            self._sink, self._source = _uhd_pair(device, samp_rate, center_freq, tx_gain, rx_gain)
            self.connect(self, self._sink)
            self.connect(self._source, self)
        else:
            self._sink, self._source = _soapy_pair(device, samp_rate, center_freq, tx_gain, rx_gain)
            self.connect(self, self._sink)
            self.connect(self._source, self)

    def set_snr(self, snr_db: float) -> None:
        if self._sim is not None:
            self._sim.set_noise_voltage(noise_voltage(snr_db, self._signal_power))

    def set_freq_offset(self, freq_offset: float) -> None:
        if self._sim is not None:
            self._sim.set_frequency_offset(float(freq_offset))

    def set_center_freq(self, freq: float) -> None:
        if self.mode == "uhd":
            self._sink.set_center_freq(freq, 0)
            self._source.set_center_freq(freq, 0)
        elif self.mode == "soapy":
            self._sink.set_frequency(0, freq)
            self._source.set_frequency(0, freq)

    def set_tx_gain(self, gain: float) -> None:
        if self.mode == "uhd":
            self._sink.set_gain(gain, 0)
        elif self.mode == "soapy":
            self._sink.set_gain(0, gain)

    def set_rx_gain(self, gain: float) -> None:
        if self.mode == "uhd":
            self._source.set_gain(gain, 0)
        elif self.mode == "soapy":
            self._source.set_gain(0, gain)


def _uhd_pair(device: str, samp_rate: float, freq: float, tx_gain: float, rx_gain: float):
    """(usrp_sink, usrp_source) tuned alike; RuntimeError when no USRP answers."""
    from gnuradio import uhd

    args = uhd.stream_args(cpu_format="fc32", channels=[0])
    sink = uhd.usrp_sink(device, args, "")
    source = uhd.usrp_source(device, args)
    for dev, gain in ((sink, tx_gain), (source, rx_gain)):
        dev.set_samp_rate(samp_rate)
        dev.set_center_freq(freq, 0)
        dev.set_gain(gain, 0)
    return sink, source


def _soapy_pair(device: str, samp_rate: float, freq: float, tx_gain: float, rx_gain: float):
    """(soapy.sink, soapy.source) tuned alike; RuntimeError when the device is absent."""
    from gnuradio import soapy

    if not device.startswith("driver="):
        raise ValueError(f"soapy mode needs device='driver=NAME[,…]', got {device!r}")
    sink = soapy.sink(device, "fc32", 1, "", "", [""], [""])
    source = soapy.source(device, "fc32", 1, "", "", [""], [""])
    for dev, gain in ((sink, tx_gain), (source, rx_gain)):
        dev.set_sample_rate(0, samp_rate)
        dev.set_frequency(0, freq)
        dev.set_gain(0, gain)
    return sink, source
