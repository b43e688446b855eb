"""Radios: the USRP (gr-uhd) and HackRF (gr-soapy) paths. Marked `hw`; every test skips unless a
device answers (RKDSC_HW_USRP names a USRP address). Link tests also need a cabled bench (TX →
30–60 dB attenuator → RX, docs/hardware.md): RKDSC_HW_CABLED=1 for a USRP looped onto itself,
RKDSC_HW_HACKRF_PAIR="serial_tx,serial_rx" for two HackRFs (it is half-duplex)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.gnuradio, pytest.mark.hw]


def usrp_address(address: str = "") -> str | None:
    """`address` when a USRP answers there ("" = the first found), else None. (Debian's
    gnuradio.uhd.find_devices is broken in 3.10.5, so open a source instead.)"""
    try:
        from gnuradio import uhd

        uhd.usrp_source(address, uhd.stream_args(cpu_format="fc32", channels=[0]))
    except (ImportError, RuntimeError):
        return None
    return address


def hackrf_present(args: str = "driver=hackrf") -> bool:
    try:
        from gnuradio import soapy

        soapy.source(args, "fc32", 1, "", "", [""], [""])
    except (ImportError, RuntimeError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def usrp() -> str:
    addr = usrp_address(os.environ.get("RKDSC_HW_USRP", ""))
    if addr is None:
        pytest.skip("no USRP answers")
    return addr


@pytest.fixture(scope="module")
def hackrf() -> str:
    if not hackrf_present():
        pytest.skip("no HackRF answers")
    return "driver=hackrf"


@pytest.mark.parametrize("mode", ["uhd", "soapy"])
def test_receiver_streams_from_the_radio(mode, request, tiny_bundle):
    device = request.getfixturevalue("usrp" if mode == "uhd" else "hackrf")
    from rkdsc_gr.ota_radio import RadioConfig, run_rx

    radio = RadioConfig(samp_rate=2e6, freq=915e6, gain=20.0, device=device, if_offset=0.2)
    out = run_rx(mode, tiny_bundle, radio=radio, duration=2.0)
    assert out["seconds"] >= 2.0
    assert out["rx"]["samples_read"] > 1e6  # ~2 MS/s for 2 s, give or take start-up


@pytest.mark.parametrize("mode", ["uhd", "soapy"])
def test_transmitter_sends_bursts(mode, request, tiny_bundle):
    device = request.getfixturevalue("usrp" if mode == "uhd" else "hackrf")
    from rkdsc_gr.ota_radio import RadioConfig, run_tx

    radio = RadioConfig(samp_rate=2e6, freq=915e6, gain=0.0, device=device, if_offset=0.2)
    out = run_tx(mode, tiny_bundle, n=50, image_rate=100.0, radio=radio)
    assert out["frames_sent"] == 50


def test_usrp_cabled_link(usrp, tiny_bundle):
    if os.environ.get("RKDSC_HW_CABLED") != "1":
        pytest.skip("set RKDSC_HW_CABLED=1 with TX looped to RX through an attenuator")
    import numpy as np
    import pmt
    from gnuradio import blocks, gr

    from rkdsc_gr._pdu import make_pdu
    from rkdsc_gr.ota_rx import ota_rx
    from rkdsc_gr.ota_tx import ota_tx
    from rkdsc_gr.rf_link import rf_link

    tb = gr.top_block()
    tx, rx = ota_tx(if_offset=0.2), ota_rx(if_offset=0.2)
    link = rf_link("uhd", device=usrp, samp_rate=2e6, center_freq=915e6, tx_gain=10.0, rx_gain=20.0)
    dbg = blocks.message_debug()
    tb.connect(tx, link, rx)
    tb.msg_connect(rx, "out", dbg, "store")
    tb.start()
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = (rng.normal(size=16) + 1j * rng.normal(size=16)).astype(np.complex64) / np.sqrt(2)
        tx.framer.to_basic_block()._post(pmt.intern("in"), make_pdu(pmt.make_dict(), p))
    deadline = time.monotonic() + 10.0
    while dbg.num_messages() < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    tb.stop()
    tb.wait()
    assert dbg.num_messages() >= 198, rx.stats()


def test_hackrf_pair_link(tiny_bundle, tmp_path):
    pair = os.environ.get("RKDSC_HW_HACKRF_PAIR", "")
    if "," not in pair:
        pytest.skip('set RKDSC_HW_HACKRF_PAIR="serial_tx,serial_rx" with two cabled HackRFs')
    tx_serial, rx_serial = pair.split(",", 1)
    if not (
        hackrf_present(f"driver=hackrf,serial={tx_serial}")
        and hackrf_present(f"driver=hackrf,serial={rx_serial}")
    ):
        pytest.skip("the HackRF pair does not answer")
    from rkdsc_gr.ota_radio import RadioConfig, run_rx

    cmd = [
        sys.executable,
        "-m",
        "rkdsc.cli",
        "tx",
        "--mode",
        "soapy",
        "--bundle",
        tiny_bundle,
        "--n",
        "300",
        "--image-rate",
        "100",
        "--device",
        f"driver=hackrf,serial={tx_serial}",
        "--gain",
        "20",
    ]
    sender = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        radio = RadioConfig(2e6, 915e6, 30.0, f"driver=hackrf,serial={rx_serial}", 0.2)
        out = run_rx("soapy", tiny_bundle, radio=radio, duration=6.0)
    finally:
        sender.wait(timeout=30)
    assert out["decisions"] >= 250, out
