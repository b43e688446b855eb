"""IR through the runtime on a tiny bundle: the raw outputs give the K = k code, the IR receiver
decodes the rebuilt prefix like the fixed-K receiver, and the offline points count their cost."""

from __future__ import annotations

import numpy as np
import pytest

from rkdsc_core.adapt import assemble_prefix, ir_schedule, split_increments
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.eval.adaptive import simulate_point
from rkdsc_core.runtime import Bundle, IRIncrement, IRReceiver
from rkdsc_core.testing import make_tiny_bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return Bundle(make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", stop_gain=0.5))


@pytest.fixture(scope="module")
def data():
    return load_dataset("fmnist_subset", "test").subset(40)


def test_raw_prefix_normalised_is_the_k_code(tiny, data):
    raw = tiny.transmitter(16).encode_raw(data.images)
    for k in (4, 8, 16):
        code = tiny.transmitter(k).encode(data.images)
        want = raw[:, :k] / np.sqrt(np.mean(np.abs(raw[:, :k]) ** 2, 1, keepdims=True))
        assert np.allclose(code, want, atol=1e-5)


def test_ir_receiver_decodes_like_the_fixed_receiver(tiny, data):
    raw = tiny.transmitter(16).encode_raw(data.images)
    schedule = ir_schedule(4, 16)
    blocks, gains = split_increments(raw, schedule)
    ir = IRReceiver(tiny, confidence=0.99)  # the tiny rule (gain 0.5) never stops early
    offsets = (0, 4, 8, 12)
    for j, k in enumerate(schedule):
        items = [
            IRIncrement(i, offsets[j], gains[i, j], blocks[j][i], 8.0, final=k == 16)
            for i in range(len(data))
        ]
        decisions = ir.receive(items)
        # the K = k code, each symbol with the SNR its rescaled increment has
        _, snr = assemble_prefix(blocks[: j + 1], [np.full(len(data), 8.0)] * (j + 1), gains)
        want = tiny.receiver().decode(tiny.transmitter(k).encode(data.images), snr)
        got = np.stack([d.logits for d in decisions])
        assert np.allclose(got, want, atol=1e-4)
        assert all(d.symbols == k and d.done == (k == 16) for d in decisions)
    assert ir.pending() == []


def test_ir_receiver_decides_on_a_gap_and_on_expiry(tiny, data):
    raw = tiny.transmitter(16).encode_raw(data.images[:2])
    blocks, gains = split_increments(raw, (4, 8, 16))
    ir = IRReceiver(tiny, confidence=0.99)
    first = ir.receive([IRIncrement(i, 0, 1.0, blocks[0][i], 5.0) for i in range(2)])
    assert not any(d.done for d in first) and ir.pending() == [0, 1]
    gap = ir.receive([IRIncrement(0, 8, gains[0, 2], blocks[2][0], 5.0)])  # [4, 8) was lost
    assert gap[0].done and gap[0].symbols == 4
    expired = ir.expire(1)
    assert expired.done and expired.symbols == 4 and ir.pending() == []
    assert ir.expire(1) is None
    lost_first = ir.receive([IRIncrement(5, 4, 1.0, blocks[1][0], 5.0)])
    late = ir.receive([IRIncrement(1, 4, gains[1, 1], blocks[1][1], 5.0)])  # after its expiry
    assert lost_first == [None] and late == [None] and ir.pending() == []


def test_simulated_points_count_symbols_and_requests(tiny, data):
    raw = tiny.transmitter(16).encode_raw(data.images)
    y = data.labels
    fixed = simulate_point(tiny, raw, y, "awgn", 5.0, "none", rate=8)
    assert fixed["mean_channel_uses"] == 8 and fixed["requests_per_image"] == 0
    never = simulate_point(tiny, raw, y, "rayleigh", 5.0, "ir", rate=16, confidence=0.99)
    assert never["schedule"] == [4, 8, 12, 16]
    assert never["mean_channel_uses"] == 16 and never["requests_per_image"] == 3
    assert never["feedback_per_image"] == 4
    # at 60 dB the decoder's SNR input saturates: IR to K_max is then exactly fixed K_max
    clear = simulate_point(tiny, raw, y, "awgn", 60.0, "ir", rate=16, confidence=0.99)
    full = simulate_point(tiny, raw, y, "awgn", 60.0, "none", rate=16)
    assert clear["accuracy"] == full["accuracy"]
    always = simulate_point(tiny, raw, y, "awgn", 5.0, "ir", rate=16, confidence=0.5)
    assert always["mean_channel_uses"] == 4 and always["requests_per_image"] == 0
    lossy = simulate_point(tiny, raw, y, "awgn", 5.0, "ir", rate=16, confidence=0.99, loss=0.5)
    assert 4 < lossy["mean_channel_uses"] < 16
    assert lossy["requests_per_image"] > (lossy["mean_channel_uses"] - 4) / 4  # lost ones too
    snr = simulate_point(tiny, raw, y, "awgn", 5.0, "snr", rate=16, target=0.6, delay=3)
    assert snr["k_histogram"] == {"4": len(y) - 4, "16": 4}  # K_max until feedback arrives


def test_rate_adaptation_script_writes_json_and_plot(tiny, tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "rate_adaptation.py"
    spec = importlib.util.spec_from_file_location("rate_adaptation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "ra.json"
    argv = ["--bundle", str(tiny.path), "--n", "30", "--channels", "awgn", "--snrs", "5"]
    argv += ["--k-max", "16", "--confidences", "0.5", "0.99", "--json", str(out)]
    assert mod.main(argv) == 0
    rep = json.loads(out.read_text())
    (p,) = rep["points"]
    assert list(p["fixed"]) == ["4", "8", "16"]
    assert p["ir"]["0.5"]["mean_channel_uses"] == 4 and p["ir"]["0.99"]["mean_channel_uses"] == 16
    assert out.with_suffix(".png").stat().st_size > 1000
