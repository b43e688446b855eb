"""Differentiable channels, CSI, power normalisation and the one SNR convention (DESIGN.md §3).

Typical use: `out = ChannelMix.from_config(cfg.stage2.channel)(x, generator=g)` for training and
`make_channel("rayleigh")(x, snr_db=5.0, generator=g)` for evaluation; both return a
`ChannelOutput` (equalised `symbols`, `snr_db`, per-symbol `snr_eff_db`, drawn `h`, ...).
"""

from rkdsc_core.channels.awgn import AWGN, add_noise, complex_normal
from rkdsc_core.channels.draws import DrawKey, apply_keyed
from rkdsc_core.channels.equalize import mmse_equalize, zf_equalize
from rkdsc_core.channels.estimate import (
    interpolation_weights,
    jakes_correlation,
    linear_interpolate,
    lmmse_estimate,
    ls_estimate,
    pilot_positions,
    pilot_symbols,
)
from rkdsc_core.channels.fading import (
    FadingModel,
    NoFading,
    RayleighBlockFading,
    RayleighTimeVarying,
    RicianBlockFading,
    apply_flat_fading,
)
from rkdsc_core.channels.link import (
    CHANNELS,
    CSI_MODES,
    EQUALIZERS,
    FADING_MODELS,
    Channel,
    ChannelOutput,
    list_channels,
    make_channel,
    make_fading,
)
from rkdsc_core.channels.mix import ChannelMix
from rkdsc_core.channels.power import average_power, normalize_power
from rkdsc_core.channels.snr import (
    db_to_linear,
    linear_to_db,
    measure_snr_db,
    noise_variance,
    noise_voltage,
)

__all__ = [
    "AWGN",
    "CHANNELS",
    "CSI_MODES",
    "EQUALIZERS",
    "FADING_MODELS",
    "Channel",
    "DrawKey",
    "ChannelMix",
    "ChannelOutput",
    "FadingModel",
    "NoFading",
    "RayleighBlockFading",
    "RayleighTimeVarying",
    "RicianBlockFading",
    "add_noise",
    "apply_keyed",
    "apply_flat_fading",
    "average_power",
    "complex_normal",
    "db_to_linear",
    "interpolation_weights",
    "jakes_correlation",
    "linear_interpolate",
    "linear_to_db",
    "list_channels",
    "lmmse_estimate",
    "ls_estimate",
    "make_channel",
    "make_fading",
    "measure_snr_db",
    "mmse_equalize",
    "noise_variance",
    "noise_voltage",
    "normalize_power",
    "pilot_positions",
    "pilot_symbols",
    "zf_equalize",
]
