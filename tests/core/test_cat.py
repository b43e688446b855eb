"""CAT codec: unit power per image for every rate, batch independence, nested truncation, grads."""

import pytest
import torch

from rkdsc_core.codec.cat import CATCodec, CATConfig


@pytest.fixture(scope="module")
def cat():
    torch.manual_seed(0)
    return CATCodec(
        CATConfig(
            feature_dim=32,
            k_max=16,
            rates=(2, 4, 8, 16),
            tokens=4,
            d_model=16,
            heads=2,
            enc_layers=1,
            dec_layers=1,
        )
    ).eval()


def test_unit_power_for_every_rate(cat):
    f = torch.randn(6, 32)
    for k in (1, 2, 4, 8, 16):
        x = cat.encode(f, k, snr_db=5.0)
        p = x[:, :k].abs().pow(2).mean(1)
        torch.testing.assert_close(p, torch.ones(6), atol=1e-5, rtol=0)
        assert torch.all(x[:, k:] == 0)


def test_per_sample_rates_and_unknown_snr(cat):
    f = torch.randn(3, 32)
    k = torch.tensor([2, 8, 16])
    x = cat.encode(f, k, snr_db=torch.tensor([float("nan"), 0.0, 10.0]))
    for i, ki in enumerate(k.tolist()):
        assert torch.all(x[i, ki:] == 0)
        assert abs(x[i, :ki].abs().pow(2).mean().item() - 1) < 1e-5
    # an unknown SNR (NaN) is a different input from any known one
    a = cat.encode(f[:1], 8, snr_db=None)
    b = cat.encode(f[:1], 8, snr_db=0.0)
    assert not torch.allclose(a, b)


def test_outputs_do_not_depend_on_batch_mates(cat):
    f = torch.randn(8, 32)
    alone = cat.encode(f[:1], 8, 3.0)
    with_others = cat.encode(torch.cat([f[:1], 100 * torch.randn(7, 32)]), 8, 3.0)[:1]
    torch.testing.assert_close(alone, with_others, atol=1e-5, rtol=1e-5)
    y = torch.randn(8, 16, dtype=torch.complex64)
    snr = torch.full((8, 16), 5.0)
    mask = CATCodec.rate_mask(torch.full((8,), 8), 16)
    d_alone = cat.decode(y[:1], snr[:1], mask[:1])
    y2 = y.clone()
    y2[1:] *= 50
    torch.testing.assert_close(d_alone, cat.decode(y2, snr, mask)[:1], atol=1e-5, rtol=1e-5)


def test_decoder_ignores_symbols_that_were_not_sent(cat):
    y = torch.randn(2, 16, dtype=torch.complex64)
    mask = CATCodec.rate_mask(torch.tensor([4, 4]), 16)
    snr = torch.full((2,), 5.0)
    a = cat.decode(y, snr, mask)
    y2 = y.clone()
    y2[:, 4:] = torch.randn(2, 12, dtype=torch.complex64) * 10
    torch.testing.assert_close(a, cat.decode(y2, snr, mask))


@pytest.mark.parametrize("k", [1, 4, 16])
def test_decode_received_equals_the_padded_masked_decode(cat, k):
    y = torch.randn(3, k, dtype=torch.complex64)
    snr = torch.tensor([[-3.0], [4.0], [12.0]]).expand(3, k)
    padded = torch.nn.functional.pad(y, (0, 16 - k))
    mask = CATCodec.rate_mask(torch.full((3,), k), 16)
    with torch.no_grad():
        want = cat.decode(padded, torch.nn.functional.pad(snr, (0, 16 - k)), mask)
        torch.testing.assert_close(cat.decode_received(y, snr), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cat.decode_received(y, snr[:, 0]), want, rtol=1e-5, atol=1e-5)


def test_gradients_reach_encoder_and_decoder(cat):
    cat.train()
    f = torch.randn(4, 32, requires_grad=True)
    x = cat.encode(f, torch.tensor([2, 4, 8, 16]), 0.0)
    z = cat.decode(x + 0.1, torch.zeros(4), CATCodec.rate_mask(torch.tensor([2, 4, 8, 16]), 16))
    z.pow(2).sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert all(p.grad is not None for p in cat.parameters() if p.requires_grad)
    cat.eval()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="feature_dim"):
        CATConfig(feature_dim=30, tokens=4)
    with pytest.raises(ValueError, match="rates"):
        CATConfig(feature_dim=32, tokens=4, k_max=8, rates=(4, 16))
    cat = CATCodec(
        CATConfig(
            feature_dim=32,
            k_max=8,
            rates=(4, 8),
            tokens=4,
            d_model=16,
            heads=2,
            enc_layers=1,
            dec_layers=1,
        )
    )
    with pytest.raises(ValueError, match="k must lie"):
        cat.encode(torch.randn(2, 32), 9)


def test_light_token_encoder_is_nested_and_small():
    """The transmitter-size option (issue 19): a narrower encoder whose tokens each emit their
    own symbols still gives unit power for every prefix and leaves the decoder as it was."""
    kw = dict(feature_dim=64, k_max=16, rates=(4, 16), tokens=8, d_model=32, heads=2)
    dense = CATCodec(CATConfig(**kw))
    light = CATCodec(CATConfig(**kw, enc_d_model=8, enc_ff_mult=1, enc_out="token"))
    n_params = [sum(p.numel() for p in m.encoder.parameters()) for m in (dense, light)]
    assert n_params[1] < n_params[0] / 5
    assert sum(p.numel() for p in light.decoder.parameters()) == sum(
        p.numel() for p in dense.decoder.parameters()
    )
    f = torch.randn(4, 64)
    for k in (1, 4, 16):
        x = light.encode(f, k)
        torch.testing.assert_close(x[:, :k].abs().pow(2).mean(1), torch.ones(4), atol=1e-5, rtol=0)
    # token t emits symbols t, t + 8: changing only token 0's input moves both, at least
    g = f.clone()
    g[:, :8] += 1.0
    diff = (light.encoder(g, torch.zeros(4)) - light.encoder(f, torch.zeros(4))).abs()
    assert diff[:, 0].min() > 0 and diff[:, 8].min() > 0
    with pytest.raises(ValueError, match="enc_out"):
        CATConfig(**kw, enc_out="sparse")
    with pytest.raises(ValueError, match="divide by tokens"):
        CATConfig(feature_dim=64, k_max=12, rates=(4,), tokens=8, enc_out="token")
