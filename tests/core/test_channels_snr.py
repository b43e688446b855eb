"""The SNR convention, power normalisation and AWGN: measured SNR matches the request."""

import math
import warnings

import numpy as np
import pytest
import torch

from rkdsc_core.channels import (
    AWGN,
    average_power,
    complex_normal,
    db_to_linear,
    linear_to_db,
    measure_snr_db,
    noise_variance,
    noise_voltage,
    normalize_power,
)


def unit_symbols(b: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return normalize_power(complex_normal((b, k), generator=g))


def test_noise_variance_values_and_kinds():
    assert noise_variance(0.0) == 1.0
    assert noise_variance(10.0) == pytest.approx(0.1, rel=1e-12)
    assert noise_variance(-10.0, signal_power=2.0) == pytest.approx(20.0, rel=1e-12)
    assert noise_voltage(20.0) == pytest.approx(0.1, rel=1e-12)
    assert noise_voltage(10.0, signal_power=4.0) == pytest.approx(2 * math.sqrt(0.1), rel=1e-12)
    assert noise_variance(math.inf) == 0.0
    arr = noise_variance(np.array([0.0, 10.0, 20.0]))
    assert isinstance(arr, np.ndarray) and np.allclose(arr, [1.0, 0.1, 0.01])
    t = noise_voltage(torch.tensor([0.0, 20.0]))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([1.0, 0.1]))
    assert isinstance(noise_variance(3), float)


def test_db_round_trip_and_floor():
    x = np.array([1e-3, 0.5, 1.0, 7.0, 1e6])
    assert np.allclose(db_to_linear(linear_to_db(x)), x, rtol=1e-12)
    t = torch.tensor([0.0, 1.0, math.inf])
    assert linear_to_db(t).tolist() == [-300.0, 0.0, math.inf]
    assert db_to_linear(30.0) == pytest.approx(1000.0)


@pytest.mark.parametrize("bad", [math.nan, -math.inf, np.array([0.0, np.nan])])
def test_noise_variance_rejects_bad_snr(bad):
    with pytest.raises(ValueError, match="snr_db"):
        noise_variance(bad)
    with pytest.raises(ValueError, match="snr_db"):
        noise_voltage(bad)


@pytest.mark.parametrize("power", [0.0, -1.0, math.nan, math.inf])
def test_noise_variance_rejects_bad_signal_power(power):
    with pytest.raises(ValueError, match="signal_power"):
        noise_variance(0.0, signal_power=power)


def test_linear_to_db_rejects_negative():
    with pytest.raises(ValueError, match="value"):
        linear_to_db(torch.tensor([-1.0]))


def test_normalize_power_unit_per_image_and_masked():
    g = torch.Generator().manual_seed(1)
    x = complex_normal((6, 32), generator=g) * torch.arange(1, 7).unsqueeze(1)
    y = normalize_power(x)
    assert torch.allclose(average_power(y), torch.ones(6), atol=1e-6)
    mask = torch.arange(32).unsqueeze(0) < torch.tensor([[4], [8], [16], [32], [1], [2]])
    ym = normalize_power(x, mask)
    assert torch.allclose(average_power(ym, mask), torch.ones(6), atol=1e-6)
    assert (ym[~mask] == 0).all()
    zero = normalize_power(torch.zeros(2, 4, dtype=torch.complex64))
    assert torch.isfinite(zero.real).all() and (zero == 0).all()


def test_normalize_power_is_differentiable():
    x = unit_symbols(4, 8).requires_grad_(True)
    (normalize_power(3 * x).real[:, 0]).sum().backward()
    assert torch.isfinite(x.grad.real).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 20.0])
def test_awgn_measured_snr(snr_db):
    x = unit_symbols(1000, 1000)  # 10^6 unit-power symbols
    y = AWGN()(x, snr_db, generator=torch.Generator().manual_seed(2))
    assert abs(measure_snr_db(x, y) - snr_db) < 0.05
    n = (y - x).to(torch.complex128)
    half = noise_variance(snr_db) / 2  # circular: half per rail, uncorrelated rails
    assert n.real.var().item() == pytest.approx(half, rel=0.01)
    assert n.imag.var().item() == pytest.approx(half, rel=0.01)
    assert abs((n.real * n.imag).mean().item()) < 0.01 * half


def test_awgn_per_sample_snr():
    x = unit_symbols(400, 1000)
    snr = torch.tensor([-5.0, 15.0]).repeat_interleave(200)
    y = AWGN()(x, snr, generator=torch.Generator().manual_seed(3))
    assert abs(measure_snr_db(x[:200], y[:200]) + 5.0) < 0.05
    assert abs(measure_snr_db(x[200:], y[200:]) - 15.0) < 0.05


def test_awgn_seeded_and_noiseless():
    x = unit_symbols(4, 16)
    a = AWGN()(x, 0.0, generator=torch.Generator().manual_seed(5))
    b = AWGN()(x, 0.0, generator=torch.Generator().manual_seed(5))
    c = AWGN()(x, 0.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(AWGN()(x, math.inf), x)
    assert AWGN()(x.to(torch.complex128), 0.0).dtype == torch.complex128


def _complex32() -> torch.Tensor:
    with warnings.catch_warnings():  # "ComplexHalf support is experimental"
        warnings.simplefilter("ignore", UserWarning)
        return torch.zeros(2, 4, dtype=torch.complex32)


C64 = torch.complex64


@pytest.mark.parametrize(
    ("make_x", "snr", "match"),
    [
        (lambda: torch.zeros(2, 4), 0.0, "x must be complex64 or complex128"),
        (_complex32, 0.0, "x must be complex64 or complex128"),
        (lambda: torch.zeros(8, dtype=C64), 0.0, "x must have 2 dimensions"),
        (lambda: torch.zeros(2, 3, 4, dtype=C64), 0.0, "x must have 2 dimensions"),
        (lambda: torch.zeros(2, 0, dtype=C64), 0.0, "x must not be empty"),
        (lambda: np.zeros((2, 4), np.complex64), 0.0, "x must be a torch.Tensor"),
        (lambda: torch.zeros(2, 4, dtype=C64), math.nan, "snr_db"),
        (lambda: torch.zeros(2, 4, dtype=C64), torch.zeros(3), "snr_db"),
        (lambda: torch.zeros(2, 4, dtype=C64), -math.inf, "snr_db"),
        (lambda: torch.zeros(2, 4, dtype=C64), "high", "snr_db"),
    ],
)
def test_awgn_rejects_bad_arguments(make_x, snr, match):
    with pytest.raises(ValueError, match=match):
        AWGN()(make_x(), snr)
