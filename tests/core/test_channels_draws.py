"""Keyed channel draws (common random numbers, issue 19): one draw per (seed, channel, SNR, image),
independent of the batch and nested in K, shared by every evaluated method."""

import numpy as np
import pytest
import torch

from rkdsc_core.channels import DrawKey, apply_keyed, make_channel, noise_variance
from rkdsc_core.channels import draws as draws_mod

CHANNELS = ("awgn", "rayleigh", "rician", "rayleigh_fast")


@pytest.mark.parametrize("name", CHANNELS)
def test_draws_depend_on_the_image_not_the_batch_and_nest_in_k(name):
    ch = make_channel(name)
    key = DrawKey(3, name, 5.0)
    h64, n64 = draws_mod.draw(ch, key, np.arange(10, 20), 64)
    h16, n16 = draws_mod.draw(ch, key, [12], 16)  # image 12 alone, fewer symbols
    torch.testing.assert_close(n16[0], n64[2, :16], rtol=0, atol=0)
    # rayleigh_fast sums its sinusoids in blocks sized by N: equal to float32 rounding
    torch.testing.assert_close(
        h16[0], h64[2, :16], rtol=0, atol=1e-6 if name == "rayleigh_fast" else 0
    )
    assert not torch.equal(n64[0], n64[1])  # images differ


@pytest.mark.parametrize(
    "other", [DrawKey(4, "awgn", 5.0), DrawKey(3, "awgn", 6.0), DrawKey(3, "rayleigh", 5.0)]
)
def test_seed_snr_and_channel_change_the_draws(other):
    base = draws_mod.draw(make_channel("awgn"), DrawKey(3, "awgn", 5.0), [0, 1], 8)[1]
    got = draws_mod.draw(make_channel(other.channel), other, [0, 1], 8)[1]
    assert not torch.allclose(base, got)


def test_snr_key_ignores_float_noise_and_rejects_nan():
    assert draws_mod.snr_key(0.1 + 0.2) == draws_mod.snr_key(0.3)
    with pytest.raises(ValueError, match="snr_db"):
        DrawKey(0, "awgn", float("nan"))
    with pytest.raises(ValueError, match="seed"):
        DrawKey(-1, "awgn", 0.0)


def test_keyed_draws_have_the_right_statistics():
    # 4,000 images × 64 symbols: E|n|² = 1 within 1% (std of the mean ≈ 0.2%), rails independent
    ch = make_channel("rayleigh")
    h, n = draws_mod.draw(ch, DrawKey(0, "rayleigh", 0.0), np.arange(4000), 64, torch.complex128)
    assert abs(n.abs().square().mean().item() - 1) < 0.01
    assert abs((n.real * n.imag).mean().item()) < 0.01
    p = h[:, 0].abs().square()  # block fading: |h|² ~ Exp(1)
    assert abs(p.mean().item() - 1) < 0.05 and abs((p < 1).double().mean().item() - 0.632) < 0.03
    assert torch.equal(h, h[:, :1].expand_as(h))


def test_apply_keyed_is_h_x_plus_scaled_noise():
    ch = make_channel("rayleigh", equalizer="zf")
    x = torch.randn(5, 8, dtype=torch.complex64)
    out = apply_keyed(ch, x, 3.0, np.arange(5), seed=7)
    h, n = draws_mod.draw(ch, DrawKey(7, "rayleigh", 3.0), np.arange(5), 8)
    expected = h * x + n * float(noise_variance(3.0)) ** 0.5
    torch.testing.assert_close(out.y, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="image indices"):
        apply_keyed(ch, x, 3.0, np.arange(4))


def test_estimated_csi_draws_cover_the_pilots():
    ch = make_channel("rayleigh", csi="ls", num_pilots=4)
    h, n = draws_mod.draw(ch, DrawKey(0, "rayleigh", 0.0), [0, 1], 16)
    assert h.shape == n.shape == (2, 20)
    out = apply_keyed(ch, torch.ones(2, 16, dtype=torch.complex64), 0.0, [0, 1])
    assert out.symbols.shape == (2, 16)


def test_noise_and_generator_together_raise():
    ch = make_channel("awgn")
    x = torch.ones(2, 4, dtype=torch.complex64)
    with pytest.raises(ValueError, match="not both"):
        ch.apply(x, torch.ones(2, 1, dtype=torch.complex64), 0.0, torch.Generator(), noise=x)
