"""GNU Radio and PyTorch mean the same thing by "s dB": unit-power symbols through
`channels.channel_model(noise_voltage=noise_voltage(s))` measure Es/N0 = s within 0.1 dB.

channel_model's resampler drops the first 3 input samples (output n is input n + 3) and returns 8
fewer samples; the alignment is found by correlation, not assumed.
"""

import numpy as np
import pytest
import torch

from rkdsc_core.channels import (
    AWGN,
    complex_normal,
    measure_snr_db,
    noise_voltage,
    normalize_power,
)

pytestmark = pytest.mark.gnuradio

N = 200_000
# channel_model draws its noise from a finite pre-generated pool (analog.fastnoise_source_c), so a
# seed's realised noise power is off by ~0.04 dB (std over seeds 1-20; seed 9 gives -0.10 dB).
NOISE_SEED = 7


def run_channel_model(x: np.ndarray, snr_db: float) -> np.ndarray:
    """x complex64 [N] through channel_model with no CFO, no timing offset, one unit tap."""
    pytest.importorskip("gnuradio")
    from gnuradio import blocks, channels, gr

    tb = gr.top_block()
    src = blocks.vector_source_c(x, False)
    chan = channels.channel_model(
        noise_voltage=float(noise_voltage(snr_db)),
        frequency_offset=0.0,
        epsilon=1.0,
        taps=[1.0 + 0.0j],
        noise_seed=NOISE_SEED,
        block_tags=False,
    )
    sink = blocks.vector_sink_c()
    tb.connect(src, chan, sink)
    tb.run()
    return np.asarray(sink.data(), dtype=np.complex64)


def align(x: np.ndarray, y: np.ndarray, max_shift: int = 8) -> int:
    """The shift s with y[n] ≈ x[n + s], by correlation over the shared span."""
    m = len(y) - max_shift
    scores = [abs(np.vdot(x[s : s + m], y[:m])) for s in range(max_shift + 1)]
    return int(np.argmax(scores))


@pytest.fixture(scope="module")
def unit_symbols() -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    return normalize_power(complex_normal((1, N), generator=g))[0].numpy()


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 20.0])
def test_channel_model_snr_matches_convention(unit_symbols, snr_db):
    y = run_channel_model(unit_symbols, snr_db)
    assert len(y) == N - 8
    shift = align(unit_symbols, y)
    assert shift == 3
    clean = unit_symbols[shift : shift + len(y)]
    measured = measure_snr_db(clean, y)
    assert abs(measured - snr_db) < 0.1
    # and the PyTorch AWGN at the same nominal SNR lands on the same figure
    x = torch.from_numpy(unit_symbols).unsqueeze(0)
    torch_measured = measure_snr_db(
        x, AWGN()(x, snr_db, generator=torch.Generator().manual_seed(1))
    )
    assert abs(measured - torch_measured) < 0.1


def test_channel_model_without_noise_is_a_pure_shift(unit_symbols):
    y = run_channel_model(unit_symbols[:4096], 300.0)
    assert np.allclose(y, unit_symbols[3 : 3 + len(y)], atol=1e-5)
