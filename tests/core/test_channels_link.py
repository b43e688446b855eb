"""Channels by name, Generate/Apply, the training mix, gradients and argument errors."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from core_helpers import gen

from rkdsc_core.channels import (
    AWGN,
    CSI_MODES,
    EQUALIZERS,
    ChannelMix,
    RayleighBlockFading,
    apply_flat_fading,
    complex_normal,
    list_channels,
    make_channel,
    measure_snr_db,
    normalize_power,
)
from rkdsc_core.config import ChannelMixConfig, load_config

ALL = list_channels()


def symbols(b: int, k: int, seed: int = 0) -> torch.Tensor:
    return normalize_power(complex_normal((b, k), generator=gen(seed)))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("csi", CSI_MODES)
def test_channel_output_contract(name, csi):
    x = symbols(6, 12)
    out = make_channel(name, csi=csi)(x, torch.linspace(-5, 20, 6), generator=gen(1))
    for field in (out.symbols, out.h, out.h_hat, out.y):
        assert field.shape == (6, 12) and field.dtype == torch.complex64
    assert out.snr_db.shape == (6,) and out.snr_db.dtype == torch.float32
    assert out.snr_eff_db.shape == (6, 12) and out.snr_eff_db.dtype == torch.float32
    assert out.channel == [name] * 6 and out.channel_index.dtype == torch.int64
    assert torch.isfinite(out.snr_eff_db).all()
    if csi == "perfect":
        assert torch.equal(out.h, out.h_hat)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("equalizer", EQUALIZERS)
def test_noiseless_perfect_csi_recovers_symbols(name, equalizer):
    x = symbols(16, 20)
    out = make_channel(name, equalizer=equalizer)(x, math.inf, generator=gen(2))
    assert torch.allclose(out.symbols, x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("csi", CSI_MODES)
def test_gradients_reach_the_input(name, csi):
    x = symbols(8, 16).requires_grad_(True)
    out = make_channel(name, csi=csi)(x, 10.0, generator=gen(3))
    loss = (out.symbols - x.detach()).abs().square().sum() + out.symbols.real.sum()
    loss.backward()
    assert torch.isfinite(x.grad.real).all() and (x.grad.abs() > 0).all()


def test_gradients_through_modules_and_mix():
    for fn in (
        lambda x: AWGN()(x, 0.0, generator=gen(4)),
        lambda x: apply_flat_fading(x, RayleighBlockFading().generate(8, 16), 0.0),
        lambda x: ChannelMix(ALL, csi="lmmse")(normalize_power(x), generator=gen(4)).symbols,
    ):
        x = symbols(8, 16).requires_grad_(True)
        fn(x).real.sum().backward()
        assert torch.isfinite(x.grad.real).all() and (x.grad.abs() > 0).all()


def test_generate_then_apply_equals_forward_and_h_is_reusable():
    ch = make_channel("rayleigh_fast", csi="lmmse", fd_ts=0.02)
    x = symbols(32, 24)
    g = gen(5)
    h = ch.generate(32, 24, generator=g)
    assert h.shape == (32, ch.frame_length(24)) == (32, 28)
    a = ch.apply(x, h, 3.0, generator=g)
    b = ch(x, 3.0, generator=gen(5))
    assert torch.equal(a.symbols, b.symbols) and torch.equal(a.h, b.h)
    # the same draw through a perfect-CSI receiver: same true h at the data symbols
    perfect = make_channel("rayleigh_fast", fd_ts=0.02).apply(x, a.h, 3.0, generator=gen(6))
    assert torch.equal(perfect.h, a.h)
    # a [B, 1] gain means block fading, whatever the frame length
    block = ch.apply(x, h[:, :1], 3.0, generator=gen(6))
    assert torch.equal(block.h, h[:, :1].expand(32, 24))


@pytest.mark.parametrize("name", ALL)
def test_mse_falls_with_snr(name):
    x = symbols(2000, 16)
    mse = [
        ((make_channel(name)(x, s, generator=gen(7)).symbols - x).abs() ** 2).mean().item()
        for s in (0.0, 10.0, 20.0)
    ]
    assert mse[0] > mse[1] > mse[2]


def test_awgn_channel_measured_snr_and_reported_snr():
    x = symbols(1000, 1000)
    out = make_channel("awgn")(x, 7.0, generator=gen(8))
    assert abs(measure_snr_db(x, out.symbols) - 7.0) < 0.05
    assert torch.allclose(out.snr_eff_db, torch.full_like(out.snr_eff_db, 7.0), atol=1e-4)


def test_estimated_csi_lowers_the_reported_snr():
    x = symbols(4000, 32)
    perfect = make_channel("rayleigh")(x, 5.0, generator=gen(9))
    est = make_channel("rayleigh", csi="lmmse")(x, 5.0, generator=gen(9))
    assert est.snr_eff_db.mean() < perfect.snr_eff_db.mean()
    # the LMMSE receiver's reported SNR is honest: ZF error power ≈ 1 / eff_snr on average
    err = (est.symbols - x).abs().double() ** 2 * 10 ** (est.snr_eff_db.double() / 10)
    assert err.mean().item() == pytest.approx(1.0, rel=0.05)


def test_mix_from_config_draws_channels_and_snrs():
    cfg = ChannelMixConfig(
        channels=["awgn", "rayleigh", "rayleigh_fast", "rician"],
        weights=[1.0, 2.0, 3.0, 4.0],
        snr_min_db=-4.0,
        snr_max_db=16.0,
    )
    mix = ChannelMix.from_config(cfg)
    b = 20_000
    out = mix(symbols(b, 8), generator=gen(10))
    counts = torch.bincount(out.channel_index, minlength=4).numpy()
    assert scipy.stats.chisquare(counts, b * np.array([0.1, 0.2, 0.3, 0.4])).pvalue > 0.01
    snr = out.snr_db.numpy()
    assert snr.min() >= -4.0 and snr.max() <= 16.0
    assert scipy.stats.kstest(snr, "uniform", args=(-4.0, 20.0)).pvalue > 0.01
    idx = out.channel_index
    assert (out.h[idx == 0] == 1).all()  # awgn
    block = out.h[(idx == 1) | (idx == 3)]
    assert torch.equal(block, block[:, :1].expand_as(block))  # one gain per image
    fast = out.h[idx == 2]
    assert (fast[:, 1:] != fast[:, :1]).any(dim=1).all()  # varies within the image
    rician_k = out.h[idx == 3, 0].abs().square().double()
    assert rician_k.mean().item() == pytest.approx(1.0, rel=0.02)
    assert out.channel[:3] == [mix.channel_names[i] for i in idx[:3].tolist()]


def test_mix_is_seeded_takes_an_snr_and_matches_fixed_channels():
    mix = ChannelMix(["awgn", "rayleigh"])
    x = symbols(64, 16)
    a, b = mix(x, generator=gen(11)), mix(x, generator=gen(11))
    assert torch.equal(a.symbols, b.symbols) and torch.equal(a.snr_db, b.snr_db)
    fixed = mix(x, torch.full((64,), 3.0), generator=gen(11))
    assert (fixed.snr_db == 3.0).all() and torch.equal(fixed.channel_index, a.channel_index)
    assert mix.sample_snr(5, generator=gen(12)).shape == (5,)
    only_awgn = ChannelMix(["awgn"], snr_min_db=2.0, snr_max_db=2.0)(x, generator=gen(13))
    assert (only_awgn.snr_db == 2.0).all() and torch.equal(only_awgn.h, torch.ones_like(x))


def test_mix_defaults_follow_the_project_config():
    mix = ChannelMix.from_config(load_config().stage2.channel)
    assert mix.as_dict()["channels"] == ["awgn", "rayleigh"]
    assert mix.as_dict()["snr_min_db"] == -10.0 and mix.as_dict()["csi"] == "perfect"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mix_on_cuda_with_a_cpu_generator():
    x = symbols(16, 8).cuda()
    out = ChannelMix(ALL, csi="lmmse")(x, generator=gen(14))
    assert out.symbols.device == x.device and out.snr_db.device == x.device
    cpu = ChannelMix(ALL, csi="lmmse")(x.cpu(), generator=gen(14))
    assert torch.allclose(out.symbols.cpu(), cpu.symbols, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": ["awgn", "nakagami"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": ["awgn", "awgn"]}, "channels"),
        ({"weights": [1.0]}, "weights"),
        ({"weights": [1.0, -1.0]}, "weights"),
        ({"weights": [0.0, 0.0]}, "weights"),
        ({"snr_min_db": 5.0, "snr_max_db": 0.0}, "snr_max_db"),
        ({"snr_min_db": math.nan}, "snr_min_db"),
        ({"rician_k": -1.0}, "rician_k"),
        ({"fd_ts": -0.1}, "fd_ts"),
        ({"csi": "genie"}, "csi"),
        ({"equalizer": "mlse"}, "equalizer"),
        ({"num_pilots": 0}, "num_pilots"),
    ],
)
def test_mix_rejects_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChannelMix(**kwargs)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_channel("nakagami"), "channel"),
        (lambda: make_channel("awgn", k_factor=3.0), "k_factor"),
        (lambda: make_channel("rician", k_factor=-2.0), "k_factor"),
        (lambda: make_channel("rician", csi="oracle"), "csi"),
        (lambda: make_channel("awgn")(symbols(2, 4), math.nan), "snr_db"),
        (lambda: make_channel("awgn")(symbols(2, 4).real, 0.0), "x must be complex"),
        (lambda: make_channel("awgn")(symbols(2, 4)[0], 0.0), "x must have 2 dimensions"),
        (lambda: ChannelMix()(symbols(2, 4), torch.zeros(3)), "snr_db"),
        (lambda: ChannelMix()(symbols(2, 4).abs(), 0.0), "x must be complex"),
        (
            lambda: make_channel("rayleigh").apply(symbols(2, 4), torch.ones(2, 3) + 0j, 0.0),
            "h must have shape",
        ),
    ],
)
def test_channel_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
