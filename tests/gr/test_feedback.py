"""Rate adaptation in GNU Radio (issue 18): the feedback link delays and loses messages, and the
symbol loopback with SNR-chosen K or incremental redundancy gives what the offline simulation
gives on the same images and keyed draws, and never stalls on lost requests. Flowgraphs run in
subprocesses (`python test_feedback.py SCENARIO JSON`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gr_helpers import run_scenario

pytestmark = pytest.mark.gnuradio

HERE = Path(__file__).resolve()
RKDSC = [sys.executable, "-m", "rkdsc.cli"]


def _run(scenario: str, **kw) -> dict:
    return run_scenario(HERE, scenario, kw, 400)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> str:
    from rkdsc_core.testing import make_tiny_bundle

    return str(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", stop_gain=0.5))


def test_feedback_link_delays_and_loses():
    r = _run("link")
    assert r["delayed"] == [0, 1, 2] and r["held"] == 3  # 6 sent, 3 held back
    assert 350 < r["lost"] < 650 and r["lost"] + r["passed"] == 1000 - 2


def test_ir_loopback_equals_the_offline_simulation(tiny_bundle):
    """No loss: the flowgraph's decisions, symbols and requests are the offline ones."""
    for conf in (0.99, 0.5):
        r = _run("versus_offline", bundle=tiny_bundle, confidence=conf)
        lb, off = r["loopback"], r["offline"]
        assert lb["frames_detected"] == 60
        for key in ("accuracy", "mean_channel_uses", "requests_per_image", "feedback_per_image"):
            assert lb[key] == pytest.approx(off[key]), (conf, key)
        assert lb["mean_channel_uses"] == (16 if conf == 0.99 else 4)


def test_lost_requests_never_stall_an_image(tiny_bundle):
    r = _run("lossy", bundle=tiny_bundle)
    assert r["frames_detected"] == 60 and r["feedback_lost"] > 0
    assert 4 < r["mean_channel_uses"] < 16 and r["timeouts"] > 0


def test_snr_loopback_histogram(tiny_bundle):
    """Tiny rate table: at 5 dB, target 0.6 picks K = 4; K_max until the first feedback comes
    back (images are paced at 200/s; a loaded machine sends more of them at K_max)."""
    r = _run("snr", bundle=tiny_bundle)
    hist = r["k_histogram"]
    assert r["frames_detected"] == 200 and sum(hist.values()) == 200
    assert hist["16"] >= 1 and hist["4"] >= 100 and set(hist) == {"4", "16"}
    assert r["mean_channel_uses"] == pytest.approx(sum(int(k) * v for k, v in hist.items()) / 200)


def test_cli_adapt_errors(tiny_bundle):
    for extra, message in (
        (["--adapt", "ir", "--k0", "32"], "--k0 32"),
        (["--adapt", "bogus"], "--adapt"),
        (["--adapt", "ir", "--feedback-timeout", "0"], "--feedback-timeout"),
        (["--adapt", "ir", "--feedback-loss", "1"], "--feedback-loss"),
    ):
        cmd = RKDSC + ["loopback", "--bundle", tiny_bundle, "--snr", "5", "--rate", "16", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (extra, proc.stderr[-2000:])
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- scenarios, each run in its own process --------------------------------------------------


def _scenario_link() -> dict:
    import pmt
    from gnuradio import blocks, gr

    from rkdsc_gr.feedback_link import feedback_link

    out = {}
    for name, delay, loss, n in (("delay", 3, 0.0, 6), ("loss", 2, 0.5, 1000)):
        tb = gr.top_block()
        link = feedback_link(delay, loss, seed=1)
        dbg = blocks.message_debug()
        tb.msg_connect(link, "out", dbg, "store")
        tb.start()
        for i in range(n):
            link.to_basic_block()._post(pmt.intern("in"), pmt.from_long(i))
        deadline = time.monotonic() + 60
        while link.passed() + link.lost() < n - delay and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        tb.stop()
        tb.wait()
        got = [pmt.to_long(dbg.get_message(i)) for i in range(dbg.num_messages())]
        if name == "delay":
            out.update(delayed=got, held=n - len(got))
        else:
            out.update(lost=link.lost(), passed=link.passed())
    return out


def _loopback(bundle, **adapt) -> dict:
    from rkdsc_gr.loopback import Adapt, run_loopback

    rep = run_loopback(
        bundle, "rayleigh", [5.0], 16, 60, "test", timeout_s=240, adapt=Adapt(**adapt)
    )
    return rep["points"][0]


def _scenario_versus_offline(bundle: str, confidence: float) -> dict:
    from rkdsc_core.data.datasets import load_dataset
    from rkdsc_core.eval.adaptive import encode_raw_all, simulate_point
    from rkdsc_core.runtime import load_bundle

    lb = _loopback(bundle, mode="ir", k0=4, confidence=confidence)
    bun = load_bundle(bundle)
    data = load_dataset("fmnist", "test").subset(60)  # the images the loopback sends
    raw = encode_raw_all(bun, data.images)
    off = simulate_point(bun, raw, data.labels, "rayleigh", 5.0, "ir", 16, confidence=confidence)
    return {"loopback": lb, "offline": off}


def _scenario_lossy(bundle: str) -> dict:
    return _loopback(bundle, mode="ir", confidence=0.99, feedback_loss=0.4, feedback_delay=2)


def _scenario_snr(bundle: str) -> dict:
    from rkdsc_gr.loopback import Adapt, run_loopback

    adapt = Adapt("snr", target=0.6)
    rep = run_loopback(bundle, "awgn", [5.0], 16, 200, "test", timeout_s=240, adapt=adapt)
    return rep["points"][0]


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(globals()[f"_scenario_{sys.argv[1]}"](**json.loads(sys.argv[2]))))
