"""Fading generators: Rayleigh and Rician statistics, Doppler autocorrelation, Apply half."""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats
import torch
from core_helpers import gen

from rkdsc_core.channels import (
    NoFading,
    RayleighBlockFading,
    RayleighTimeVarying,
    RicianBlockFading,
    apply_flat_fading,
    complex_normal,
    make_fading,
    measure_snr_db,
    normalize_power,
)


def rician_k_moments(power: np.ndarray) -> float:
    """Moment estimate of K from |h|²: r = E|h|⁴/E²|h|² = (K² + 4K + 2)/(K + 1)²."""
    s = math.sqrt(2.0 - np.mean(power**2) / np.mean(power) ** 2)
    return s / (1.0 - s)


def test_rayleigh_block_power_and_exponential_law():
    h = RayleighBlockFading().generate(1_000_000, 1, generator=gen(0), dtype=torch.complex128)
    power = (h.abs() ** 2).squeeze(1).numpy()
    assert abs(power.mean() - 1.0) < 0.01
    assert scipy.stats.kstest(power, "expon").pvalue > 0.01
    # the same test has the power to see a 1% scale error: it is not a test that cannot fail
    assert scipy.stats.kstest(power, "expon", args=(0, 1.01)).pvalue < 1e-6
    assert abs((h**2).mean().item()) < 0.005  # circular: E[h²] = 0


def test_rayleigh_block_is_constant_per_image_and_seeded():
    h = RayleighBlockFading().generate(64, 16, generator=gen(1))
    assert h.shape == (64, 16) and h.dtype == torch.complex64
    assert torch.equal(h, h[:, :1].expand(64, 16))
    assert torch.equal(h, RayleighBlockFading().generate(64, 16, generator=gen(1)))
    assert not torch.equal(h, RayleighBlockFading().generate(64, 16, generator=gen(2)))


@pytest.mark.parametrize("k_factor", [1.0, 4.0, 10.0])
def test_rician_k_factor_recovered(k_factor):
    h = RicianBlockFading(k_factor).generate(1_000_000, 1, generator=gen(3), dtype=torch.complex128)
    power = (h.abs() ** 2).squeeze(1).numpy()
    assert abs(power.mean() - 1.0) < 0.01
    assert rician_k_moments(power) == pytest.approx(k_factor, rel=0.05)
    # |h| is Rice-distributed: scipy's rice(b = sqrt(2K), scale = sqrt(1 / (2(K+1))))
    law = (math.sqrt(2 * k_factor), 0, math.sqrt(1 / (2 * (k_factor + 1))))
    assert scipy.stats.kstest(np.sqrt(power[:200_000]), "rice", args=law).pvalue > 0.01


def test_rician_fixed_los_phase_and_rayleigh_limit():
    h = RicianBlockFading(1e6, los_phase=0.5).generate(4, 3, generator=gen(4))
    assert torch.allclose(h, torch.polar(torch.ones(4, 3), torch.full((4, 3), 0.5)), atol=2e-3)
    h0 = RicianBlockFading(0.0).generate(400_000, 1, generator=gen(5), dtype=torch.complex128)
    p = (h0.abs() ** 2).squeeze(1).numpy()
    assert np.mean(p**2) == pytest.approx(2.0, rel=0.02)  # exponential |h|²: E|h|⁴ = 2


@pytest.mark.parametrize(("fd_ts", "num", "max_lag"), [(0.01, 100, 60), (0.05, 60, 30)])
def test_time_varying_autocorrelation_is_bessel_j0(fd_ts, num, max_lag):
    h = RayleighTimeVarying(fd_ts).generate(3000, num, generator=gen(6), dtype=torch.complex128)
    lags = np.arange(max_lag + 1)
    acf = np.array([(h[:, tau:] * h[:, : num - tau].conj()).mean().item() for tau in lags])
    j0 = scipy.special.j0(2 * np.pi * fd_ts * lags)
    assert np.abs(acf.real - j0).max() < 0.04
    assert np.abs(acf.imag).max() < 0.03
    assert abs((h**2).mean().item()) < 0.02  # circular
    # fitting J0(2π f τ) to the measured autocorrelation gives back the Doppler within 3%
    fit = scipy.optimize.minimize_scalar(
        lambda f: np.sum((acf.real - scipy.special.j0(2 * np.pi * f * lags)) ** 2),
        bounds=(0.5 * fd_ts, 2 * fd_ts),
        method="bounded",
    )
    assert fit.x == pytest.approx(fd_ts, rel=0.03)


def test_time_varying_marginal_and_edge_cases():
    model = RayleighTimeVarying(0.2, num_sinusoids=64)
    h = model.generate(20_000, 50, generator=gen(7), dtype=torch.complex128)
    p = (h.abs() ** 2).flatten()
    assert p.mean().item() == pytest.approx(1.0, rel=0.01)
    assert (p**2).mean().item() == pytest.approx(2.0 - 1 / 64, rel=0.02)  # sum of M phasors
    assert not torch.allclose(h[:, 0], h[:, 1])
    still = RayleighTimeVarying(0.0).generate(8, 20, generator=gen(8))
    assert torch.allclose(still, still[:, :1].expand(8, 20))
    assert RayleighTimeVarying(0.01).generate(3, 1).shape == (3, 1)


def test_no_fading_is_one():
    assert torch.equal(NoFading().generate(2, 3), torch.ones(2, 3, dtype=torch.complex64))


def test_apply_flat_fading_noise_and_gain():
    x = normalize_power(complex_normal((500, 400), generator=gen(9)))
    h = RayleighBlockFading().generate(500, 1, generator=gen(10))
    y = apply_flat_fading(x, h, 5.0, generator=gen(11))
    # Es/N0 is set at the transmitter: the noise has N0 = 10^(-0.5) whatever the gain of each image
    assert abs(measure_snr_db(x, x + (y - h * x)) - 5.0) < 0.05
    weak = (h.abs() < 0.5).squeeze(1)
    assert abs(measure_snr_db(x[weak], x[weak] + (y - h * x)[weak]) - 5.0) < 0.1
    assert torch.equal(apply_flat_fading(x, h, math.inf), h * x)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: RicianBlockFading(-1.0), "k_factor"),
        (lambda: RicianBlockFading(math.nan), "k_factor"),
        (lambda: RayleighTimeVarying(0.7), "fd_ts"),
        (lambda: RayleighTimeVarying(-0.1), "fd_ts"),
        (lambda: RayleighTimeVarying(0.1, num_sinusoids=2), "num_sinusoids"),
        (lambda: make_fading("nakagami"), "channel"),
        (lambda: make_fading("awgn", k_factor=2.0), "k_factor"),
        (lambda: RayleighBlockFading().generate(0, 4), "batch_size"),
        (lambda: RayleighBlockFading().generate(2, 4, dtype=torch.float32), "dtype"),
        (
            lambda: apply_flat_fading(
                torch.ones(2, 4, dtype=torch.complex64),
                torch.ones(2, 3, dtype=torch.complex64),
                0.0,
            ),
            "h must have shape",
        ),
    ],
)
def test_fading_rejects_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
