"""GNU Radio's channel blocks, built one way for the blocks that simulate the air
(`symbol_channel`, `ota_channel`, `rf_link`): AWGN at an Es/N0 through the one SNR helper
(`noise_voltage`, DESIGN.md §3), and flat fading from `channels.fading_model` seeded `seed + 1`
so that it never shares the noise's seed.
"""

from __future__ import annotations

from gnuradio import channels

from rkdsc_core.channels import noise_voltage

SINUSOIDS = 32  # fading_model's N: |h|² of the held gains is exponential within ~0.5 %


def channel_model(
    snr_db: float,
    signal_power: float = 1.0,
    cfo: float = 0.0,
    epsilon: float = 1.0,
    taps=(1.0 + 0.0j,),
    seed: int = 0,
):
    """`channels.channel_model` adding noise at Es/N0 `snr_db` for input of average power (or Es)
    `signal_power`, with a normalised CFO, sample-clock ratio `epsilon` and static `taps`. Its
    output is the input advanced by 3 samples, 8 fewer (GNURADIO.md)."""
    return channels.channel_model(
        noise_voltage=float(noise_voltage(float(snr_db), float(signal_power))),
        frequency_offset=float(cfo),
        epsilon=float(epsilon),
        taps=[complex(t) for t in taps],
        noise_seed=int(seed),
        block_tags=False,
    )


def set_snr(model, snr_db: float, signal_power: float = 1.0) -> None:
    """New Es/N0 (dB) of a `channel_model` made here."""
    model.set_noise_voltage(float(noise_voltage(float(snr_db), float(signal_power))))


def fading_model(fd_ts: float, rician: bool, k_factor: float, seed: int):
    """Flat Rayleigh (or Rician with K-factor `k_factor`) gains of mean power ≈ 1 at normalised
    Doppler `fd_ts` per sample, seeded `seed + 1` (the noise has `seed`)."""
    return channels.fading_model(
        SINUSOIDS, float(fd_ts), bool(rician), float(k_factor), int(seed) + 1
    )
