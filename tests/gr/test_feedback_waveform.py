"""Rate adaptation over the waveform (issue 18): IR increments travel in version-3 frames (offset,
final) that ota_rx turns back into increment PDUs, ota_rx publishes a feedback dict per image,
ota_tx groups increments into frames and times round trips, and `rkdsc loopback --phy waveform
--adapt ir` decides every image, even when feedback is lost (the receiver's timeout decides).
Loopbacks run in subprocesses (`python test_feedback_waveform.py SCENARIO JSON`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from gr_helpers import collect, run_scenario

pytestmark = pytest.mark.gnuradio

pmt = pytest.importorskip("pmt")

from rkdsc_core.phy import FrameConfig, FrameModulator, Header  # noqa: E402
from rkdsc_gr._polling import wait_until  # noqa: E402

HERE = Path(__file__).resolve()
CFG = FrameConfig()


def _run(scenario: str, **kw) -> dict:
    return run_scenario(HERE, scenario, kw, 500)


def _increment(index: int, offset: int, k: int, final: bool):
    from rkdsc_gr._feedback import IR_FINAL, IR_GAIN, IR_OFFSET
    from rkdsc_gr._pdu import make_pdu

    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("index"), pmt.from_long(index))
    meta = pmt.dict_add(meta, IR_OFFSET, pmt.from_long(offset))
    meta = pmt.dict_add(meta, IR_GAIN, pmt.from_double(0.5))  # does not travel
    meta = pmt.dict_add(meta, IR_FINAL, pmt.from_bool(final))
    x = np.exp(1j * (np.arange(k) + offset + 7 * index)).astype(np.complex64)
    return make_pdu(meta, x)


def test_increments_cross_the_waveform_and_ota_rx_feeds_back():
    """ota_tx (4 images per frame) → ota_rx: first increments of consecutive images share a
    frame, an answer at another offset leaves alone; ota_rx gives back increment PDUs (offset,
    final as a PMT bool, rate = symbols so far, no gain) and one feedback dict per image, which
    ota_tx's feedback port turns into round trips."""
    from gnuradio import blocks, gr

    from rkdsc_gr.ota_rx import ota_rx
    from rkdsc_gr.ota_tx import ota_tx

    tb = gr.top_block()
    tx = ota_tx(images_per_frame=4, flush_s=0.2)
    rx = ota_rx(max_images=4)
    out, frames = blocks.message_debug(), blocks.message_debug()
    tb.connect(tx, rx)
    tb.msg_connect(rx, "out", out, "store")
    tb.msg_connect(tx, "frames", frames, "store")
    tb.msg_connect(rx, "feedback", tx, "feedback")
    fb = blocks.message_debug()
    tb.msg_connect(rx, "feedback", fb, "store")
    tb.start()
    post = tx.framer.to_basic_block()._post
    for i in range(3):  # first increments of images 10, 11, 12
        post(pmt.intern("in"), _increment(10 + i, 0, 4, False))
    post(pmt.intern("in"), _increment(11, 4, 4, True))  # the answer to a request for image 11
    assert wait_until(lambda: out.num_messages() >= 4 and tx.round_trips()["feedback"] >= 4, 60)
    tb.stop()
    tb.wait()
    recs = [m[0] for m in collect(frames)]
    assert [(r["index"], r["images"], r["ir_offset"], r["ir_final"]) for r in recs] == [
        (10, 3, 0, False),
        (11, 1, 4, True),
    ]
    got = collect(out)
    assert [(m["index"], m["ir_offset"], m["ir_final"], m["rate"]) for m, _ in got] == [
        (10, 0, False, 4),
        (11, 0, False, 4),
        (12, 0, False, 4),
        (11, 4, True, 8),
    ]
    assert all("ir_gain" not in m for m, _ in got)
    want = np.exp(1j * (np.arange(4) + 4 + 77)).astype(np.complex64)
    np.testing.assert_allclose(got[3][1], want, atol=0.05)  # noiseless
    feedback = collect(fb)
    assert [(f["index"], f["symbols"], f["more"]) for f in feedback] == [
        (10, 4, False),
        (11, 4, False),
        (12, 4, False),
        (11, 8, False),
    ]
    assert all(f["snr_db"] > 30 and np.isnan(f["confidence"]) for f in feedback)
    trips = tx.round_trips()
    # image 11's answer left before its first feedback came: one stamp, closed once
    assert trips["rtt_n"] == 3 and 0 < trips["rtt_mean_s"] < 30
    assert tx.frame_symbols() == CFG.frame_symbols(4, 3) + CFG.frame_symbols(4, 1)


def test_increment_frames_need_the_v3_header_fields():
    """A frame's IR fields are in the header the numpy receiver decodes (bit-exact modulator)."""
    from rkdsc_core.phy import FrameReceiver, matched_filter, rrc_taps

    h = Header.wrap(8, 2, 5, 40, 7, increment=True, final=False, offset=24)
    burst = FrameModulator(CFG).modulate(h, np.ones((2, 8), np.complex64)).samples
    z = matched_filter(np.concatenate([burst, np.zeros(4096, np.complex64)]), rrc_taps(4, 0.35, 10))
    got = FrameReceiver(CFG).receive(z).header
    assert (got.increment, got.final, got.offset, got.version) == (1, 0, 24, 3)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> str:
    from rkdsc_core.testing import make_tiny_bundle

    return str(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", stop_gain=0.5))


def test_waveform_ir_loopback_sends_what_the_stop_rule_asks(tiny_bundle):
    """The tiny bundle's stop rule expects gain 0.5 from K_max for every decision: at confidence
    0.99 every image asks for every increment (4, 8, 12, 16: 3 requests, 4 frames), at 0.5 none
    does. Every image is decided; the channel uses are the frames' symbols exactly."""
    n = 24
    for conf, k_mean, requests in ((0.99, 16, 3), (0.5, 4, 0)):
        p = _run("ir", bundle=tiny_bundle, n=n, confidence=conf)
        assert p["images_decided"] == n and p["timeouts"] == 0 and p["dropped"] == 0, p
        assert p["mean_symbols"] == k_mean and p["requests_per_image"] == requests
        assert p["frames_sent"] == p["frames_detected"] == n * (requests + 1)
        assert p["feedback_per_image"] == requests + 1
        assert p["mean_channel_uses"] == (requests + 1) * CFG.frame_symbols(4)
        assert p["rtt_mean_s"] is not None and p["rtt_mean_s"] > 0


def test_waveform_ir_lost_feedback_is_decided_by_the_timeout(tiny_bundle):
    """40% of the feedback lost: requests that never arrive leave images waiting until the
    receiver's timeout decides them with what they have; every image is still decided."""
    n = 24
    p = _run("ir", bundle=tiny_bundle, n=n, confidence=0.99, loss=0.4, timeout=1.0)
    assert p["images_decided"] == n and p["feedback_lost"] > 0 and p["timeouts"] > 0, p
    assert 4 < p["mean_symbols"] < 16


def test_waveform_snr_loopback_follows_ota_rx_feedback(tiny_bundle):
    """--adapt snr over the waveform: ota_rx's feedback (one per image, the PHY's SNR estimate)
    reaches semantic_tx, whose tiny rate table picks K = 4 at 5 dB (target 0.6); the images sent
    before the first feedback came go at K_max = 16."""
    n = 40
    p = _run("snr", bundle=tiny_bundle, n=n)
    hist = p["k_histogram"]
    assert p["images_decided"] == n and sum(hist.values()) == n and set(hist) <= {"4", "16"}, p
    assert hist.get("4", 0) >= 1 and p["feedback_per_image"] == 1 and p["requests_per_image"] == 0
    assert p["mean_symbols"] == pytest.approx(sum(int(k) * v for k, v in hist.items()) / n)
    frames = sum(v * CFG.frame_symbols(int(k)) for k, v in hist.items())
    assert p["mean_channel_uses"] == pytest.approx(frames / n)


def _scenario_snr(bundle: str, n: int) -> dict:
    from rkdsc_gr.loopback import Adapt, run_loopback

    adapt = Adapt("snr", target=0.6)
    rep = run_loopback(
        bundle, "awgn", [5.0], 16, n, "test", phy="waveform", timeout_s=300, adapt=adapt
    )
    return rep["points"][0]


def _scenario_ir(bundle: str, n: int, confidence: float, loss=0.0, timeout=10.0) -> dict:
    from rkdsc_gr.loopback import Adapt, run_loopback

    adapt = Adapt("ir", k0=4, confidence=confidence, feedback_loss=loss, timeout_s=timeout)
    rep = run_loopback(
        bundle, "awgn", [10.0], 16, n, "test", phy="waveform", timeout_s=300, adapt=adapt
    )
    return rep["points"][0]


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(globals()[f"_scenario_{sys.argv[1]}"](**json.loads(sys.argv[2]))))
