"""Issue 21 through GNU Radio: malformed SigMF recordings are one-line errors, a recording of
another bundle is rejected frame by frame (counted), and `--snr inf` is a noiseless link."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gnuradio


def _rkdsc(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "rkdsc.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


GOOD = {
    "global": {"core:datatype": "cf32_le", "core:sample_rate": 2e6, "core:version": "1.2.0"},
    "captures": [{"core:sample_start": 0, "core:frequency": 915e6}],
    "annotations": [],
}
BAD_META = {
    "global a list": {**GOOD, "global": [1, 2]},
    "captures a dict": {**GOOD, "captures": {"core:frequency": 1}},
    "annotations of strings": {**GOOD, "annotations": ["frame"]},
    "sample_rate null": {**GOOD, "global": {**GOOD["global"], "core:sample_rate": None}},
    "sample_rate negative": {**GOOD, "global": {**GOOD["global"], "core:sample_rate": -1}},
    "sample_rate string": {**GOOD, "global": {**GOOD["global"], "core:sample_rate": "2e6"}},
    "datatype": {**GOOD, "global": {**GOOD["global"], "core:datatype": "cq99_le"}},
    "frequency string": {**GOOD, "captures": [{"core:frequency": "915M"}]},
    "top level a list": [GOOD],
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_malformed_sigmf_meta_is_a_one_line_value_error(case, tmp_path):
    from rkdsc_gr.sigmf_io import ota_sigmf_source

    base = tmp_path / "rec"
    np.zeros(64, np.complex64).tofile(f"{base}.sigmf-data")
    (tmp_path / "rec.sigmf-meta").write_text(json.dumps(BAD_META[case]))
    with pytest.raises(ValueError) as err:
        ota_sigmf_source(str(base))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data", ["missing", "empty", "not json"])
def test_missing_or_empty_data_and_broken_json(data, tmp_path):
    from rkdsc_gr.sigmf_io import ota_sigmf_source

    base = tmp_path / "rec"
    meta = json.dumps(GOOD) if data != "not json" else "{" * 50_000
    (tmp_path / "rec.sigmf-meta").write_text(meta)
    if data == "empty":
        (tmp_path / "rec.sigmf-data").write_bytes(b"")
    elif data == "not json":
        np.zeros(64, np.complex64).tofile(f"{base}.sigmf-data")
    with pytest.raises(ValueError) as err:
        ota_sigmf_source(str(base))
    assert "\n" not in str(err.value)


def test_rx_of_a_broken_recording_is_one_line_exit_2(tmp_path):
    base = tmp_path / "rec"
    (tmp_path / "rec.sigmf-meta").write_text(json.dumps(BAD_META["sample_rate null"]))
    np.zeros(64, np.complex64).tofile(f"{base}.sigmf-data")
    proc = _rkdsc("rx", "--mode", "file", "--input", str(base))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("rkdsc: error: cannot replay")


def test_recording_of_another_bundle_is_rejected_and_counted(tiny_bundle, tmp_path):
    """Issue 21 row 4: frames carry the bundle's id; `rkdsc rx` decodes only its own."""
    rec = tmp_path / "tiny"
    proc = _rkdsc("tx", "--mode", "file", "--record", str(rec), "--bundle", tiny_bundle,
                  "--n", "6", "--rate", "8")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _rkdsc("rx", "--mode", "file", "--input", str(rec), "--bundle", "default")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["decisions"] == 0 and out["rx"]["bundle"] == 6
    proc = _rkdsc("rx", "--mode", "file", "--input", str(rec), "--bundle", tiny_bundle)
    out = json.loads(proc.stdout)
    assert out["decisions"] == 6 and out["rx"]["bundle"] == 0


def test_symbol_loopback_at_inf_is_noiseless(tiny_bundle, tmp_path):
    """Issue 21 row 7: `--snr inf` ran every PDU into a drop and a traceback; now it is the
    noiseless link, written to strict JSON as "inf"."""
    out = tmp_path / "lb.json"
    proc = _rkdsc("loopback", "--bundle", tiny_bundle, "--snr", "inf", "--rate", "8", "--n", "40",
                  "--json", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]

    def no_constant(name):
        raise ValueError(name)

    rep = json.loads(out.read_text(), parse_constant=no_constant)
    (point,) = rep["points"]
    assert point["snr_db"] == "inf" and point["frames_detected"] == 40
