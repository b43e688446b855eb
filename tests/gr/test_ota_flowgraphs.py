"""The OTA flowgraphs and commands end to end (subprocesses with timeouts): a recording made by
`rkdsc tx --mode file --record` replays through rx_file.grc (and `rkdsc rx --mode file`) to the
same decisions as decoding the transmitted symbols directly; `rkdsc loopback --phy waveform` and
ota_sim.grc run to completion (a point where nothing arrives is still written, with delivered
accuracy 0; multi-image frames); against the trained bundle, the waveform loopback matches the
symbol-level one within 2 points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gnuradio

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    from rkdsc_gr.paths import grc_path

    return dict(
        os.environ, GRC_BLOCKS_PATH=str(grc_path()), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"
    )


def _run(cmd: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def rkdsc(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "rkdsc.cli", *args], timeout)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    if shutil.which("grcc") is None:
        pytest.skip("grcc not installed")
    out = tmp_path_factory.mktemp("generated")
    names = ("ota_sim", "rx_file", "tx_usrp", "rx_usrp", "tx_hackrf", "rx_hackrf")
    _run(["grcc", "-o", str(out), *(str(REPO / "flowgraphs" / f"{n}.grc") for n in names)], 180)
    for name in names:  # the hardware graphs compile (they run in test_ota_hw.py)
        script = out / f"{name}.py"
        compile(script.read_text(), str(script), "exec")
    return out


def decisions(path: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["frame_index"]: r for r in rows}


def test_recording_replays_to_the_same_decisions(tiny_bundle, compiled, tmp_path):
    from rkdsc_core.data.datasets import load_dataset
    from rkdsc_core.phy import FrameConfig, FrameReceiver, matched_filter, rrc_taps
    from rkdsc_core.runtime import load_bundle

    n, rec = 24, tmp_path / "tx"
    out = json.loads(
        rkdsc(
            "tx",
            "--mode",
            "file",
            "--record",
            str(rec),
            "--bundle",
            tiny_bundle,
            "--n",
            str(n),
            "--rate",
            "8",
        ).stdout
    )
    assert out["frames_sent"] == n
    meta = json.loads(rec.with_suffix(".sigmf-meta").read_text())
    assert len(meta["annotations"]) == n

    d1, j1 = tmp_path / "grc.jsonl", tmp_path / "grc.json"
    _run(
        [
            sys.executable,
            str(compiled / "rx_file.py"),
            "--recording",
            str(rec),
            "--bundle",
            tiny_bundle,
            "--decisions",
            str(d1),
            "--json",
            str(j1),
        ]
    )
    d2 = tmp_path / "cli.jsonl"
    summary = json.loads(
        rkdsc(
            "rx",
            "--mode",
            "file",
            "--input",
            str(rec),
            "--bundle",
            tiny_bundle,
            "--decisions",
            str(d2),
        ).stdout
    )
    grc, cli = decisions(d1), decisions(d2)
    assert sorted(grc) == sorted(cli) == list(range(n))
    assert json.loads(j1.read_text())["n"] == n and summary["decisions"] == n

    # the same decisions as decoding the transmitted symbols at the SNR the receiver estimated
    bun = load_bundle(tiny_bundle)
    images = load_dataset("fmnist", "test").images[:n]
    sent = bun.transmitter(8).encode(images)
    cfg = FrameConfig()
    x = np.fromfile(rec.with_suffix(".sigmf-data"), dtype=np.complex64)
    frames = FrameReceiver(cfg).find_frames(matched_filter(x, rrc_taps(cfg.sps, cfg.rolloff, 10)))
    assert [f.header.frame_index for f in frames] == list(range(n))
    snr = np.array([f.snr_db for f in frames], np.float32)
    assert np.all(snr > 30)  # a noiseless recording: only clipping and filter truncation remain
    expected, _ = bun.receiver().classify(sent, snr)
    for i in range(n):
        assert grc[i]["class"] == cli[i]["class"] == int(expected[i]), i
        assert grc[i]["index"] == i and abs(grc[i]["snr_db"] - snr[i]) < 0.01


def waveform_loopback(bundle: str, out: Path, *extra: str) -> dict:
    """`rkdsc loopback --phy waveform` on 120 images; its JSON."""
    rkdsc(
        "loopback",
        "--phy",
        "waveform",
        "--bundle",
        bundle,
        "--n",
        "120",
        "--json",
        str(out),
        *extra,
    )
    return json.loads(out.read_text())


def test_loopback_waveform_command(tiny_bundle, tmp_path):
    rep = waveform_loopback(tiny_bundle, tmp_path / "lb.json", "--snr=10,-5,-40")
    assert rep["phy"] == "waveform" and rep["n"] == 120
    p10, p5, p40 = rep["points"]
    assert p10["frames_sent"] == p10["frames_detected"] == 120
    assert abs(p10["snr_est_db"] - 10.0) < 1.0 and 0.0 <= p10["accuracy"] <= 1.0
    from rkdsc_core.phy import FrameConfig

    cfg = FrameConfig()
    assert p10["channel_uses_per_image"] == cfg.burst_samples(16) / cfg.sps
    assert p5["frames_detected"] >= 118  # −5 dB: the goal is ≥ 99 %
    assert abs(p5["snr_est_db"] + 5.0) < 1.0
    assert p5["delivered_accuracy"] <= p5["accuracy"]
    # nothing arrives at −40 dB: the point is still written, every image counted as wrong
    assert p40["frames_detected"] == 0 and p40["frames_sent"] == 120
    assert p40["accuracy"] is None and p40["delivered_accuracy"] == 0.0
    assert rep["provenance"]["config"]["sco_ppm"] == 50.0


def test_loopback_waveform_multi_image_frames(tiny_bundle, tmp_path):
    """--images-per-frame 40: 120 images in 3 frames, every image decoded, a fraction of the
    one-image frame's channel uses."""
    (p,) = waveform_loopback(
        tiny_bundle, tmp_path / "lb.json", "--snr=5", "--images-per-frame", "40"
    )["points"]
    assert (p["frames_sent"], p["frames_detected"], p["images_detected"]) == (3, 3, 120)
    from rkdsc_core.phy import FrameConfig

    cfg = FrameConfig()
    assert p["channel_uses_per_image"] == cfg.burst_samples(16, 40) / cfg.sps / 40
    assert p["delivered_accuracy"] == p["accuracy"]


def test_ota_sim_grc_runs_to_completion(compiled, tiny_bundle, tmp_path):
    out = tmp_path / "acc.json"
    _run(
        [
            sys.executable,
            str(compiled / "ota_sim.py"),
            "--bundle",
            tiny_bundle,
            "--dataset",
            "fmnist_subset",
            "--n-images",
            "60",
            "--json",
            str(out),
        ]
    )
    stats = json.loads(out.read_text())
    assert stats["n"] == 60 and stats["dropped"] == 0


@pytest.mark.slow
def test_waveform_accuracy_matches_symbol_loopback():
    """Acceptance: K = 16, n = 1000, 10 dB, CFO 1e-3, +50 ppm, 3 taps: >= 99 % of frames and
    accuracy within 2 points of the symbol-level loopback. Needs the trained default bundle."""
    from rkdsc_core.bundle import default_bundle_path

    if not (default_bundle_path() / "manifest.yaml").is_file():
        pytest.skip("the trained default bundle is not there yet (pending)")
    from rkdsc_gr.loopback import run_loopback

    wave = run_loopback("default", "awgn", [10.0], 16, n=1000, phy="waveform")["points"][0]
    sym = run_loopback("default", "awgn", [10.0], 16, n=1000, phy="symbol")["points"][0]
    assert wave["frames_detected"] >= 0.99 * wave["frames_sent"] == 990
    assert abs(wave["accuracy"] - sym["accuracy"]) <= 0.02, (wave, sym)


def test_radio_mode_without_a_radio_fails_in_one_line(tiny_bundle):
    try:
        from gnuradio import uhd

        uhd.usrp_source("", uhd.stream_args(cpu_format="fc32", channels=[0]))
        pytest.skip("a USRP answers here")
    except RuntimeError:
        pass
    cmd = [
        sys.executable,
        "-m",
        "rkdsc.cli",
        "rx",
        "--mode",
        "uhd",
        "--bundle",
        tiny_bundle,
        "--duration",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("rkdsc: error: no uhd receiver answered")


def test_ci16_recording_validates_and_raw_ci8_replays(tiny_bundle, compiled, tmp_path):
    """`rkdsc tx --record-datatype ci16_le` passes sigmf_validate and replays with `rkdsc rx`; a
    bare ci8 capture (hackrf_transfer -r) replays through rx_file.grc given its datatype and
    rate, and without its rate `rkdsc rx` fails in one line."""
    n, rec = 6, tmp_path / "tx16"
    rkdsc(
        *("tx", "--mode", "file", "--record", str(rec), "--bundle", tiny_bundle),
        *("--n", str(n), "--rate", "8", "--record-datatype", "ci16_le", "--hw", "file"),
    )
    validate = Path(sys.executable).with_name("sigmf_validate")
    _run([str(validate), str(rec.with_suffix(".sigmf-meta"))])
    meta = json.loads(rec.with_suffix(".sigmf-meta").read_text())["global"]
    assert meta["core:datatype"] == "ci16_le" and meta["core:hw"] == "file"
    out = rkdsc("rx", "--mode", "file", "--input", str(rec), "--bundle", tiny_bundle).stdout
    assert json.loads(out)["decisions"] == n

    rails = np.fromfile(rec.with_suffix(".sigmf-data"), "<i2").astype(np.float32) / 32767
    raw = tmp_path / "hackrf.bin"
    np.round(rails * 127).astype(np.int8).tofile(raw)
    j = tmp_path / "raw.json"
    _run(
        [
            *(sys.executable, str(compiled / "rx_file.py"), "--recording", str(raw)),
            *("--datatype", "ci8", "--samp-rate", "2e6", "--bundle", tiny_bundle, "--json", str(j)),
        ]
    )
    assert json.loads(j.read_text())["n"] == n
    cmd = [sys.executable, "-m", "rkdsc.cli", "rx", "--mode", "file", "--input", str(raw)]
    proc = subprocess.run([*cmd, "--datatype", "ci8"], capture_output=True, text=True, env=_env())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("rkdsc: error: cannot replay: ")
    assert "--samp-rate" in proc.stderr.strip().splitlines()[-1]
