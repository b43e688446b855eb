"""`rkdsc_ota_channel`: GNU Radio's impairments for the over-the-air waveform, at its own SNR
convention.

    in ─► [channels.fading_model: flat Rayleigh / Rician] ─► channels.channel_model ─► out
          (noise at Es/N0, CFO, sample-clock offset, static multipath taps)

Es/N0 for a waveform is measured at the matched-filter output: Es is the transmitter's energy per
unit-power symbol (`FrameConfig.symbol_energy` = average sample power × sps), N0 the complex noise
variance per sample, so `noise_voltage(snr_db, Es)` (rkdsc_core.channels) sets the noise. Multipath
taps are scaled by `rkdsc_core.phy.pulse.normalize_taps` so the received Es equals the sent one.
"""

from __future__ import annotations

import logging

import numpy as np
from gnuradio import gr

from rkdsc_core.errors import check_choice
from rkdsc_core.phy.pulse import normalize_taps
from rkdsc_gr import _channel_blocks
from rkdsc_gr._hier import init_hier
from rkdsc_gr.ota_tx import frame_config

log = logging.getLogger(__name__)

#: The 3-tap channel of the acceptance test (sample-spaced, before normalisation).
DEFAULT_TAPS = (1.0 + 0.0j, 0.5 * np.exp(2.1j), 0.25 * np.exp(-0.8j))
FADING = ("none", "rayleigh", "rician")


class ota_channel(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Simulated air between `ota_tx` and `ota_rx`.

    Args:
        snr_db: Es/N0 in dB (see the module docstring); runtime `set_snr`.
        cfo: carrier frequency offset, cycles per sample (±1e-3 in the acceptance test);
            runtime `set_cfo`.
        sco_ppm: sample-clock offset in parts per million (channel_model's epsilon = 1 + ppm·1e-6).
        taps: sample-spaced multipath taps (normalised here); (1,) for none.
        fading: "none", "rayleigh" or "rician" flat fading from `channels.fading_model`.
        fd_ts: fading Doppler, cycles per *symbol* (divided by sps for the per-sample model).
        k_factor: Rician K.
        seed: noise seed (fading uses seed + 1).
        sps, papr_db: the waveform (as at `ota_tx`), which fixes Es.

    Like channel_model, the output is the input advanced by 3 samples and a few samples are held
    back at the end of a finite stream.
    """

    def __init__(
        self,
        snr_db: float = 10.0,
        cfo: float = 0.0,
        sco_ppm: float = 0.0,
        taps: tuple = (1.0 + 0.0j,),
        fading: str = "none",
        fd_ts: float = 0.01,
        k_factor: float = 4.0,
        seed: int = 0,
        sps: int = 4,
        papr_db: float = 9.0,
    ) -> None:
        init_hier(self, "rkdsc_ota_channel", stream_in=True, stream_out=True)
        check_choice("fading", fading, FADING)
        if abs(sco_ppm) >= 1e4:
            raise ValueError(f"sco_ppm must be within ±10000 ppm, got {sco_ppm}")
        cfg = frame_config(sps=sps, papr_db=papr_db)
        self._es = cfg.symbol_energy
        self.taps = normalize_taps(np.asarray(taps, complex), cfg.sps, cfg.rolloff, cfg.span)
        epsilon = 1.0 + float(sco_ppm) * 1e-6
        self.model = _channel_blocks.channel_model(snr_db, self._es, cfo, epsilon, self.taps, seed)
        if fading == "none":
            self.fading = None
            self.connect(self, self.model, self)
        else:
            fd_ts_sample = float(fd_ts) / cfg.sps
            self.fading = _channel_blocks.fading_model(
                fd_ts_sample, fading == "rician", k_factor, seed
            )
            self.connect(self, self.fading, self.model, self)

    def set_snr(self, snr_db: float) -> None:
        _channel_blocks.set_snr(self.model, snr_db, self._es)

    def set_cfo(self, cfo: float) -> None:
        self.model.set_frequency_offset(float(cfo))
