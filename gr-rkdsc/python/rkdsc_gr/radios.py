"""The one module that builds radios: USRP (gr-uhd) and SoapySDR (gr-soapy, e.g. HackRF) sinks and
sources, tuned, with one gain rule per driver, for `rkdsc tx` / `rkdsc rx` (`ota_radio`) and
`rkdsc_rf_link`. A driver module is imported only when its mode is chosen; with no device attached
the constructors raise `NoRadio` (a one-line RkdscError that is also a RuntimeError).
"""

from __future__ import annotations

from dataclasses import dataclass

from rkdsc_core.errors import RkdscError, one_line

RADIO_MODES = ("uhd", "soapy")
DEFAULT_SOAPY = "driver=hackrf"
HACKRF_TX_VGA_DB = 47.0  # HackRF TX IF gain range 0-47 dB (1 dB steps)
HACKRF_LNA_DB, HACKRF_LNA_STEP = 40.0, 8.0  # RX LNA 0-40 dB in 8 dB steps
HACKRF_RX_VGA_DB, HACKRF_VGA_STEP = 62.0, 2.0  # RX baseband gain 0-62 dB in 2 dB steps


@dataclass
class RadioConfig:
    """Radio settings (uhd / soapy). `device`: UHD address ("" = first found) or Soapy arguments
    ("driver=hackrf[,serial=…]"; "" = the first HackRF); `gain`: dB, spread over the driver's
    stages by `set_gain`; `if_offset`: burst offset from the carrier, cycles/sample (the radio is
    tuned `if_offset·samp_rate` below `freq`); `images_per_frame`: N images per frame at the
    transmitter (the receiver reads N from each header)."""

    samp_rate: float = 2e6
    freq: float = 915e6
    gain: float = 0.0
    device: str = ""
    if_offset: float = 0.0
    images_per_frame: int = 1


class NoRadio(RkdscError, RuntimeError):
    """No device answered (or its driver refused the settings); the message is one line."""


def radio_sink(mode: str, radio: RadioConfig):
    """A USRP or Soapy sink tuned as `radio` says (bursts keep tx_sob / tx_eob); NoRadio when no
    device answers."""
    return _open(mode, radio, tx=True)


def radio_source(mode: str, radio: RadioConfig):
    """A USRP or Soapy source tuned as `radio` says; NoRadio when no device answers."""
    return _open(mode, radio, tx=False)


def set_frequency(dev, mode: str, freq: float) -> None:
    """Tune a sink or source made here to `freq` Hz."""
    if mode == "uhd":
        dev.set_center_freq(freq, 0)
    else:
        dev.set_frequency(0, freq)


def set_gain(dev, mode: str, device: str, gain: float, tx: bool) -> None:
    """Set `gain` dB on a sink (`tx`) or source made here. HackRF, as GRC's HackRF blocks: the
    +14 dB amplifier off; TX on the VGA only; RX on the LNA first (8 dB steps), the rest on the
    VGA (2 dB steps). Other drivers take the overall gain."""
    if mode == "uhd":
        dev.set_gain(gain, 0)
        return
    if "hackrf" not in _soapy_device(device):
        dev.set_gain(0, gain)
        return
    for stage, db in hackrf_gains(gain, tx).items():
        dev.set_gain(0, stage, db)


def hackrf_gains(gain: float, tx: bool) -> dict[str, float]:
    """HackRF stage → dB for an overall `gain` (see `set_gain`)."""
    if tx:
        return {"AMP": 0.0, "VGA": min(max(gain, 0.0), HACKRF_TX_VGA_DB)}
    lna = min(max(gain, 0.0), HACKRF_LNA_DB) // HACKRF_LNA_STEP * HACKRF_LNA_STEP
    vga = min(max(gain - lna, 0.0), HACKRF_RX_VGA_DB) // HACKRF_VGA_STEP * HACKRF_VGA_STEP
    return {"AMP": 0.0, "LNA": lna, "VGA": vga}


def _soapy_device(device: str) -> str:
    return device or DEFAULT_SOAPY


def _open(mode: str, radio: RadioConfig, tx: bool):
    tune = radio.freq - radio.if_offset * radio.samp_rate
    try:
        if mode == "uhd":
            from gnuradio import uhd

            args = uhd.stream_args(cpu_format="fc32", channels=[0])
            dev = (
                uhd.usrp_sink(radio.device, args, "") if tx else uhd.usrp_source(radio.device, args)
            )
            dev.set_samp_rate(radio.samp_rate)
        else:
            from gnuradio import soapy

            make = soapy.sink if tx else soapy.source
            dev = make(_soapy_device(radio.device), "fc32", 1, "", "", [""], [""])
            dev.set_sample_rate(0, radio.samp_rate)
        set_frequency(dev, mode, tune)
        set_gain(dev, mode, radio.device, radio.gain, tx)
        return dev
    except RuntimeError as exc:
        side = "transmitter" if tx else "receiver"
        raise NoRadio(f"no {mode} {side} answered ({one_line(exc)})") from None
