"""Receivers: ZF/MMSE equalisation and the effective SNR they report; pilot LS/LMMSE estimation."""

import math

import numpy as np
import pytest
import torch
from core_helpers import gen

from rkdsc_core.channels import (
    RayleighBlockFading,
    RayleighTimeVarying,
    complex_normal,
    interpolation_weights,
    linear_interpolate,
    lmmse_estimate,
    ls_estimate,
    mmse_equalize,
    noise_variance,
    normalize_power,
    pilot_positions,
    pilot_symbols,
    zf_equalize,
)


def symbols(b: int, k: int, seed: int) -> torch.Tensor:
    return normalize_power(complex_normal((b, k), generator=gen(seed)))


@pytest.mark.parametrize("fading", [RayleighBlockFading(), RayleighTimeVarying(0.05)])
def test_perfect_csi_recovers_noiseless_symbols_exactly(fading):
    x = symbols(64, 32, 0)
    h = fading.generate(64, 32, generator=gen(1))
    for noise_var in (0.0, 0.1):  # the nominal N0 must not bias ZF or (unbiased) MMSE
        for x_hat, _ in (
            zf_equalize(h * x, h, noise_var),
            mmse_equalize(h * x, h, noise_var),
            mmse_equalize(h * x, h, noise_var, err_var=0.05),
        ):
            assert torch.allclose(x_hat, x, atol=1e-4, rtol=1e-4)
    x_hat, _ = mmse_equalize(h * x, h, 0.0, unbiased=False)
    assert torch.allclose(x_hat, x, atol=1e-4, rtol=1e-4)


def test_effective_snr_is_post_equaliser_snr():
    """ZF error power per symbol is 1/eff_snr; biased MMSE error is 1/(1 + eff_snr)."""
    b, k, snr_db = 20_000, 50, 6.0
    x = symbols(b, k, 2)
    h = RayleighBlockFading().generate(b, k, generator=gen(3))
    n0 = noise_variance(snr_db)
    y = h * x + math.sqrt(n0) * complex_normal((b, k), generator=gen(4))
    x_zf, eff_db = zf_equalize(y, h, n0)
    eff = 10 ** (eff_db.double() / 10)
    assert torch.allclose(eff, (h.abs() ** 2).double() / n0, rtol=1e-4)
    assert ((x_zf - x).abs().double() ** 2 * eff).mean().item() == pytest.approx(1.0, rel=0.01)
    x_mmse, eff_mmse_db = mmse_equalize(y, h, n0, unbiased=False)
    assert torch.equal(eff_mmse_db, eff_db)
    err = (x_mmse - x).abs().double() ** 2 * (1 + eff)
    assert err.mean().item() == pytest.approx(1.0, rel=0.01)
    assert ((x_mmse - x).abs() ** 2).mean() < ((x_zf - x).abs() ** 2).mean()


def test_equalisers_take_numpy_and_estimation_error():
    y = np.array([[1 + 1j, 2j]], np.complex64)
    h = np.array([[1j, 2]], np.complex64)
    x_hat, eff = zf_equalize(y, h, np.array([0.5]))
    assert isinstance(x_hat, np.ndarray) and np.allclose(x_hat, [[1 - 1j, 1j]])
    assert np.allclose(eff, 10 * np.log10([2.0, 8.0]))
    _, eff = mmse_equalize(y, h, 0.5, err_var=np.array([[0.5, 1.5]], np.float32))
    assert np.allclose(eff, 10 * np.log10([1.0, 2.0]))
    _, eff = zf_equalize(y, h, 0.0)
    assert np.isfinite(eff).all() and (eff > 250).all()  # noiseless: huge but finite


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda y, h: zf_equalize(y, h, -1.0), "noise_var"),
        (lambda y, h: zf_equalize(y, h, math.nan), "noise_var"),
        (lambda y, h: zf_equalize(y.real, h, 0.1), "y must be complex"),
        (lambda y, h: zf_equalize(y, h[:, :2], 0.1), "h must have shape"),
        (lambda y, h: mmse_equalize(y, h, 0.1, err_var=-1.0), "err_var"),
        (lambda y, h: mmse_equalize(y, h, 0.1, err_var=torch.zeros(2, 5)), "err_var"),
        (lambda y, h: zf_equalize([1j], h, 0.1), "y must be"),
    ],
)
def test_equalisers_reject_bad_arguments(call, match):
    y = torch.ones(2, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match=match):
        call(y, y.clone())


def test_pilot_layout():
    pilot_idx, data_idx = pilot_positions(60, 4)
    assert pilot_idx.tolist() == [8, 24, 40, 56]
    assert sorted(pilot_idx.tolist() + data_idx.tolist()) == list(range(64))
    for k, p in [(1, 1), (1, 7), (5, 2), (100, 9)]:
        pi, di = pilot_positions(k, p)
        assert len(set(pi.tolist()) | set(di.tolist())) == k + p and len(di) == k
    assert torch.allclose(pilot_symbols(7).abs(), torch.ones(7))


def test_ls_and_interpolation_exact_without_noise():
    p = pilot_symbols(4)
    h = torch.tensor([[1 + 1j, 2 - 1j, 3 + 0j, 4 + 2j]], dtype=torch.complex64)
    assert torch.allclose(ls_estimate(h * p, p), h)
    block = ls_estimate(torch.full((1, 4), 2j, dtype=torch.complex64) * p, p, block=True)
    assert block.shape == (1, 1) and torch.allclose(block, torch.tensor([[2j]]))
    # a channel linear in time is interpolated exactly; ends are held
    pilot_idx = [2, 5, 9, 14]
    line = torch.tensor([[0.5 * i + 1j * i for i in pilot_idx]], dtype=torch.complex64)
    out = linear_interpolate(line, pilot_idx, [0, 2, 3, 7, 14, 16])
    want = [0.5 * i + 1j * i for i in (2, 2, 3, 7, 14, 14)]
    assert torch.allclose(out, torch.tensor([want], dtype=torch.complex64))
    assert torch.allclose(
        interpolation_weights(pilot_idx, range(20)).sum(1), torch.ones(20).double()
    )
    np_out = ls_estimate(np.asarray(h * p), np.asarray(p))
    assert isinstance(np_out, np.ndarray) and np.allclose(np_out, h.numpy())


def test_lmmse_block_closed_form():
    """fd_ts = 0: h_hat = Σ(y_p/p) / (P + N0), error variance N0 / (P + N0) (unit prior)."""
    p = pilot_symbols(4)
    y = complex_normal((5, 4), generator=gen(5))
    n0 = torch.tensor([0.01, 0.1, 1.0, 3.0, 10.0])
    h_hat, err = lmmse_estimate(y, p, [0, 1, 2, 3], [0, 7], n0)
    want = (y / p).sum(1, keepdim=True) / (4 + n0.unsqueeze(1))
    assert torch.allclose(h_hat, want.expand(5, 2), atol=1e-5)
    assert torch.allclose(err, (n0 / (4 + n0)).unsqueeze(1).expand(5, 2), atol=1e-5)
    h_np, err_np = lmmse_estimate(y.numpy(), p.numpy(), [0, 1, 2, 3], [0, 7], 0.1)
    assert isinstance(h_np, np.ndarray) and isinstance(err_np, np.ndarray)


@pytest.mark.parametrize(
    ("fading", "snr_db"), [(RayleighBlockFading(), 0.0), (RayleighTimeVarying(0.02), 10.0)]
)
def test_lmmse_error_variance_is_calibrated_and_beats_ls(fading, snr_db):
    b, k, num_p = 20_000, 28, 4
    pilot_idx, data_idx = pilot_positions(k, num_p)
    h = fading.generate(b, k + num_p, generator=gen(6), dtype=torch.complex128)
    p = pilot_symbols(num_p, dtype=torch.complex128)
    n0 = noise_variance(snr_db)
    y_p = h[:, pilot_idx] * p + math.sqrt(n0) * complex_normal(
        (b, num_p), generator=gen(7), dtype=torch.complex128
    )
    h_hat, err = lmmse_estimate(y_p, p, pilot_idx, data_idx, n0, fading.fd_ts)
    mse = ((h_hat - h[:, data_idx]).abs() ** 2).mean(0)
    assert torch.allclose(mse, err.mean(0), rtol=0.05)  # the reported error is the real one
    h_ls = linear_interpolate(ls_estimate(y_p, p), pilot_idx, data_idx)
    assert mse.mean() < ((h_ls - h[:, data_idx]).abs() ** 2).mean()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_var": -1.0}, "noise_var"),
        ({"fd_ts": math.nan}, "fd_ts"),
        ({"prior_var": 0.0}, "prior_var"),
        ({"pilot_idx": [0, 1]}, "pilot_idx"),
        ({"pilots": torch.zeros(4, dtype=torch.complex64)}, "pilots"),
        ({"pilots": torch.ones(4)}, "pilots must be complex"),
        ({"target_idx": [0.5]}, "target_idx"),
    ],
)
def test_lmmse_rejects_bad_arguments(kwargs, match):
    args = dict(
        y_pilots=torch.ones(2, 4, dtype=torch.complex64),
        pilots=pilot_symbols(4),
        pilot_idx=[0, 1, 2, 3],
        target_idx=[4, 5],
        noise_var=0.1,
    )
    with pytest.raises(ValueError, match=match):
        lmmse_estimate(**{**args, **kwargs})
