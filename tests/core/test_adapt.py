"""Rate adaptation (issue 18): IR increments rebuild the K = k code, keyed draws are nested, the
stopping rule is monotone and calibrated, and the offline simulation counts what it sends."""

from __future__ import annotations

import numpy as np
import pytest

from rkdsc_core.adapt import (
    StopRule,
    _isotonic,
    assemble_prefix,
    fit_stop_rule,
    ir_schedule,
    keyed_channel,
    split_increments,
)


def test_ir_schedule():
    assert ir_schedule(4, 64) == (4, 8, 12, 16, 24, 32, 48, 64)
    assert ir_schedule(2, 16) == (2, 4, 6, 8, 12, 16)
    assert ir_schedule(4, 64, step=20) == (4, 24, 44, 64)
    assert ir_schedule(5, 16) == (5, 10, 15, 16)
    assert ir_schedule(16, 16) == (16,)
    for bad in ((0, 16), (17, 16)):
        with pytest.raises(ValueError, match="k0"):
            ir_schedule(*bad)
    with pytest.raises(ValueError, match="step"):
        ir_schedule(4, 16, step=0)


@pytest.mark.parametrize("schedule", [(4, 8, 16, 32, 64), (4, 8, 12, 16, 64), (64,)])
def test_increments_rebuild_the_k_code(schedule):
    """Noiseless: each prefix rebuilt from unit-power increments and their gains equals the first
    k raw outputs normalised together (the K = k code), and each increment has unit power."""
    rng = np.random.default_rng(0)
    raw = (rng.standard_normal((7, 64)) + 1j * rng.standard_normal((7, 64))) * rng.uniform(
        0.1, 5, (7, 64)
    )
    blocks, gains = split_increments(raw, schedule)
    assert np.allclose(gains[:, 0], 1.0)
    for blk in blocks:
        assert np.allclose(np.mean(np.abs(blk) ** 2, 1), 1.0, atol=1e-5)
    for j, k in enumerate(schedule):
        x, snr = assemble_prefix(blocks[: j + 1], [np.full(7, 10.0)] * (j + 1), gains)
        want = raw[:, :k] / np.sqrt(np.mean(np.abs(raw[:, :k]) ** 2, 1, keepdims=True))
        assert x.shape == (7, k) and np.allclose(x, want, atol=1e-5)
        # a symbol scaled by a has its noise scaled by a: SNR - 20 log10(a)
        scale = np.abs(x) / np.abs(np.concatenate(blocks[: j + 1], 1))
        assert np.allclose(snr, 10.0 - 20 * np.log10(scale), atol=1e-3)


def test_assembled_prefix_noise_is_what_its_snr_says():
    """Rebuilt with noise, each symbol's error variance matches the SNR it is given."""
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((20000, 16)) * np.linspace(0.2, 3, 16) + 0j
    blocks, gains = split_increments(raw, (4, 16))
    n0 = 0.1
    noisy = [
        b + np.sqrt(n0 / 2) * (rng.standard_normal(b.shape) + 1j * rng.standard_normal(b.shape))
        for b in blocks
    ]
    x, snr = assemble_prefix(noisy, [np.full(20000, 10.0)] * 2, gains)
    clean, _ = assemble_prefix(blocks, [np.full(20000, 10.0)] * 2, gains)
    err = np.abs(x - clean) ** 2 / 10 ** (-snr / 10)  # error / the N0 the SNR implies
    assert abs(err.mean() - 1.0) < 0.02


def test_keyed_channel_is_nested_and_keyed():
    """An increment meets the draws of its own positions: sending symbols 8..16 alone gives
    what they got inside the whole code; another SNR or image gives other draws."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 64)) + 1j * rng.standard_normal((3, 64))) / np.sqrt(2)
    y, h = keyed_channel(x, [0, 9, 4], 0, "rayleigh", 5.0, seed=3)
    y2, h2 = keyed_channel(x[1:2, 8:16], [9], 8, "rayleigh", 5.0, seed=3)
    assert np.allclose(y2[0], y[1, 8:16], atol=1e-6) and np.allclose(h2[0], h[1, 8:16])
    y3, _ = keyed_channel(x[1:2, 8:16], [9], 8, "rayleigh", 6.0, seed=3)
    assert not np.allclose(y3, y2)
    assert np.allclose(h[1], h[1, 0])  # block fading: one gain per image


def test_keyed_channel_snr():
    x = np.ones((4000, 16), np.complex64)
    y, h = keyed_channel(x, np.arange(4000), 0, "awgn", 3.0, seed=2)
    n0 = np.mean(np.abs(y - x) ** 2)
    assert abs(10 * np.log10(1 / n0) - 3.0) < 0.1 and np.allclose(h, 1)


def test_isotonic_pools_violators_and_fills_empty_cells():
    got = _isotonic(np.array([0.5, 0.9, 0.7, 0.0, 0.5, 0.99]), np.array([1, 1, 1, 0, 1, 1.0]))
    assert np.allclose(got, [0.5, 0.7, 0.7, 0.7, 0.7, 0.99])
    assert np.all(np.diff(_isotonic(np.random.default_rng(0).random(50), np.ones(50))) >= 0)


def test_fitted_stop_rule_recovers_the_gain_and_round_trips():
    """Synthetic decisions whose gain from K_max is 1 − margin in expectation (k = 4; right at
    k with probability = margin, always right at K_max) or 0 (k = 8): the table recovers it
    within a bin, is non-increasing in the margin, and stops where the gain is small enough."""
    from rkdsc_core.adapt import margin

    rng = np.random.default_rng(0)
    n = 40000
    m = rng.uniform(0, 1, n)
    logits = np.zeros((n, 3))
    logits[:, 0] = np.log1p(m / (1 - m + 1e-9))  # softmax margin between classes 0 and 1
    score = margin(logits)
    k = np.where(rng.random(n) < 0.5, 4, 8)
    right_at_k = np.where(k == 4, rng.random(n) < score, True)
    gains = 1.0 - right_at_k
    snr = rng.uniform(-5, 15, n)
    rule = fit_stop_rule(k, logits, snr, gains, (4, 8), 16)
    assert np.all(np.diff(rule.gain, axis=2) <= 1e-12)
    probe = np.array([0.2, 0.5, 0.8, 0.97])
    pl = np.zeros((4, 3))
    pl[:, 0] = np.log1p(probe / (1 - probe))
    got = rule.expected_gain(4, pl, np.full(4, 5.0))
    assert np.allclose(got, 1 - margin(pl), atol=0.08)  # bins are 0.05 wide
    assert np.all(rule.expected_gain(8, pl, np.full(4, 5.0)) < 0.01)
    assert rule.stop(4, pl, 5.0, 0.9).tolist() == [False, False, False, True]
    assert np.all(rule.stop(16, pl, 5.0, 0.999))  # K_max always stops
    again = StopRule.from_dict(rule.to_dict())
    assert np.allclose(again.expected_gain(4, pl, np.full(4, 5.0)), got, atol=1e-4)
