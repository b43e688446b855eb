"""SigMF recordings as SDR users make them: the source block's stock conversion chain matches
numpy and the sigmf library for every datatype; a cf32 burst of frames converted with numpy to
each datatype replays to every frame and the cf32 replay's decisions; what we record (cf32_le,
ci16_le) validates with the library, `core:sha512` included; bad metadata and raw files without
enough information give one-line errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gnuradio

sigmf = pytest.importorskip("sigmf")

from rkdsc_gr.sigmf_meta import (  # noqa: E402
    DATATYPES,
    check_meta,
    convert_recording,
    dequantise,
    open_recording,
    quantise,
    sigmf_paths,
    write_meta,
)

N_FRAMES, RATE = 8, 8


def _replay(path, **kw) -> np.ndarray:
    from gnuradio import blocks, gr

    from rkdsc_gr.sigmf_io import ota_sigmf_source

    tb = gr.top_block()
    src, snk = ota_sigmf_source(str(path), **kw), blocks.vector_sink_c()
    tb.connect(src, snk)
    tb.run()
    return np.array(snk.data(), np.complex64)


@pytest.mark.parametrize("name", list(DATATYPES))
def test_source_chain_matches_numpy_and_the_library(tmp_path, name):
    dtype = DATATYPES[name]
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.99, 0.99, size=(3000, 2)).astype(np.float32).view(np.complex64)[:, 0]
    x[:4] = [1.2, -1.2j, 0.999 + 0.999j, -1.0]  # saturation and full scale
    rails = quantise(x, dtype)
    base = tmp_path / name
    rails.tofile(sigmf_paths(base)[0])
    write_meta(base, name, 1e6, 433.92e6, [])
    y = _replay(base)
    assert y.dtype == np.complex64 and len(y) == len(x)
    np.testing.assert_allclose(y, dequantise(rails, dtype), rtol=0, atol=1e-6)
    step = 1.0 / dtype.full_scale if dtype.full_scale > 1 else 1e-6
    np.testing.assert_allclose(  # rounding only
        y[4:].view(np.float32), x[4:].view(np.float32), rtol=0, atol=0.501 * step
    )
    if dtype.full_scale > 1:
        # saturated at full scale (the negative rail may reach one step further, as in GNU Radio)
        assert y[0].real == 1.0 and abs(y[1].imag + 1.0) <= step + 1e-6
    # sigmf-python reads the same rails, with its own scale (2^(bits-1), cu8 centred on 128)
    lib = sigmf.sigmffile.fromfile(str(base)).read_samples()
    bits = 8 * np.dtype(dtype.rail).itemsize
    if np.dtype(dtype.rail).kind == "f":
        np.testing.assert_array_equal(lib, y)
    else:
        half = 2.0 ** (bits - 1)
        centre = half if np.dtype(dtype.rail).kind == "u" else 0.0
        ours_as_lib = (y.view(np.float32) * dtype.full_scale + dtype.centre - centre) / half
        np.testing.assert_allclose(lib.view(np.float32), ours_as_lib, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def burst(tiny_bundle, tmp_path_factory) -> Path:
    """A cf32 recording of N_FRAMES frames, made as `rkdsc tx --mode file --record` makes it."""
    from rkdsc_gr.ota_radio import RecordConfig, run_tx

    base = tmp_path_factory.mktemp("rec") / "burst"
    out = run_tx("file", tiny_bundle, str(base), N_FRAMES, RATE, record_opts=RecordConfig())
    assert out["frames_sent"] == N_FRAMES
    return base


def _decisions(tiny_bundle, path, tmp_path, **kw) -> dict[int, dict]:
    from rkdsc_gr.ota_radio import run_rx

    log = tmp_path / f"{Path(path).name}.jsonl"
    out = run_rx("file", tiny_bundle, str(path), decisions=str(log), rate=RATE, **kw)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert out["decisions"] == len(rows)
    return {r["frame_index"]: r for r in rows}


def _numpy_convert(base: Path, dst: Path, name: str) -> Path:
    """What a user does by hand: rails with numpy, the meta copied with a new core:datatype
    (its core:sha512 is now stale: a replay warns but plays)."""
    x = np.fromfile(sigmf_paths(base)[0], np.complex64)
    quantise(x, DATATYPES[name]).tofile(sigmf_paths(dst)[0])
    doc = json.loads(sigmf_paths(base)[1].read_text())
    doc["global"]["core:datatype"] = name
    sigmf_paths(dst)[1].write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("name", [n for n in DATATYPES if n != "cf32_le"])
def test_every_datatype_replays_every_frame(burst, tiny_bundle, tmp_path, name):
    ref = _decisions(tiny_bundle, burst, tmp_path)
    assert sorted(ref) == list(range(N_FRAMES))
    got = _decisions(tiny_bundle, _numpy_convert(burst, tmp_path / name, name), tmp_path)
    assert sorted(got) == list(range(N_FRAMES))
    eight_bit = DATATYPES[name].full_scale < 200
    for i in range(N_FRAMES):
        assert (
            got[i]["index"] == ref[i]["index"] and got[i]["sample_start"] == ref[i]["sample_start"]
        )
        # a noiseless recording: quantisation noise alone sets the estimated SNR
        assert got[i]["snr_db"] > (30.0 if eight_bit else ref[i]["snr_db"] - 0.5), (i, got[i])
    same = sum(got[i]["class"] == ref[i]["class"] for i in range(N_FRAMES))
    assert same >= N_FRAMES - (1 if eight_bit else 0)


def test_library_conversion_validates_and_replays(burst, tiny_bundle, tmp_path):
    meta = convert_recording(burst, tmp_path / "conv", "ci8")
    handle = sigmf.sigmffile.fromfile(str(meta))  # checks core:sha512 against the data
    handle.validate()
    assert handle.get_global_field("core:datatype") == "ci8"
    assert len(handle.get_annotations()) == N_FRAMES
    assert sorted(_decisions(tiny_bundle, meta, tmp_path)) == list(range(N_FRAMES))


def test_raw_capture_replays_with_its_datatype(burst, tiny_bundle, tmp_path):
    """hackrf_transfer -r x.cs8 writes bare ci8: replayed by suffix, or any name + datatype."""
    rails = np.fromfile(sigmf_paths(burst)[0], np.float32)
    raw = tmp_path / "capture.cs8"
    np.clip(np.round(rails * 127), -127, 127).astype(np.int8).tofile(raw)
    got = _decisions(tiny_bundle, raw, tmp_path, samp_rate=2e6)
    assert sorted(got) == list(range(N_FRAMES))
    other = shutil.copy(raw, tmp_path / "capture.bin")
    assert sorted(_decisions(tiny_bundle, other, tmp_path, datatype="ci8", samp_rate=2e6)) == list(
        range(N_FRAMES)
    )
    from rkdsc_core.errors import RkdscError
    from rkdsc_gr.ota_radio import run_rx

    for kw, match in (
        ({"samp_rate": 2e6}, "give its datatype"),
        ({"datatype": "ci8"}, "give its sample rate"),
        ({"datatype": "ci12", "samp_rate": 2e6}, "choose from"),
    ):
        with pytest.raises(RkdscError, match=match):
            run_rx("file", tiny_bundle, str(other), **kw)
    with pytest.raises(RkdscError, match="contradicts"):
        run_rx("file", tiny_bundle, str(burst), datatype="ci8")


@pytest.mark.parametrize("name", ["cf32_le", "ci16_le"])
def test_recordings_validate_with_hash_hw_and_author(burst, tiny_bundle, tmp_path, name):
    from rkdsc_gr.ota_radio import RecordConfig, run_tx

    base = tmp_path / name
    opts = RecordConfig(name, "USRP B210 (test)", "A. Tester")
    run_tx("file", tiny_bundle, str(base), N_FRAMES, RATE, record_opts=opts)
    data, meta = sigmf_paths(base)
    handle = sigmf.sigmffile.fromfile(str(meta))  # recomputes and compares core:sha512
    handle.validate()
    glob = handle.get_global_info()
    assert glob["core:sha512"] == hashlib.sha512(data.read_bytes()).hexdigest()
    assert glob["core:hw"] == "USRP B210 (test)" and glob["core:author"] == "A. Tester"
    assert glob["core:datatype"] == name
    assert {"name": "rkdsc", "version": "0.1.0", "optional": True} in glob["core:extensions"]
    anns = handle.get_annotations()
    assert [a["rkdsc:frame_index"] for a in anns] == list(range(N_FRAMES))
    sigmf.validate.main([str(meta)])  # the sigmf_validate command: SystemExit(1) if invalid
    rails = np.dtype(DATATYPES[name].rail)
    rec = open_recording(base)
    assert rec.sample_count * 2 * rails.itemsize == data.stat().st_size
    # the same bursts as the cf32 recording of the same images; the idle gaps between them
    # depend on when the transmitter's input ran dry, so the recordings are compared burst by burst
    cf32 = np.fromfile(sigmf_paths(burst)[0], np.complex64)
    ref_anns = sigmf.sigmffile.fromfile(str(sigmf_paths(burst)[1])).get_annotations()
    raw = np.fromfile(data, rails)
    assert len(anns) == len(ref_anns)
    for a, r in zip(anns, ref_anns):
        assert a["core:sample_count"] == r["core:sample_count"]
        start, ref_start, n = a["core:sample_start"], r["core:sample_start"], r["core:sample_count"]
        want = quantise(cf32[ref_start : ref_start + n], DATATYPES[name])
        diff = np.abs(raw[2 * start : 2 * (start + n)].astype(np.float64) - want)
        if name == "ci16_le":  # half the disk; the stock converter rounds as numpy does
            assert diff.max() <= 1 and np.mean(diff == 0) > 0.999
        else:  # the pulse-shaping filter's SIMD sums may round with the buffer's alignment
            assert diff.max() < 1e-5
    assert sorted(_decisions(tiny_bundle, base, tmp_path)) == list(range(N_FRAMES))


@pytest.mark.parametrize(
    "doc, match",
    [
        ([], "is not of type 'object'"),
        ({"global": {"core:datatype": "cf32_le"}}, "required property"),
        (
            {
                "global": {
                    "core:datatype": "cf32_le",
                    "core:version": "1.2.0",
                    "core:sample_rate": "2e6",
                },
                "captures": [],
                "annotations": [],
            },
            "global/core:sample_rate",
        ),
        (
            {
                "global": {"core:datatype": "ri16_le", "core:version": "1.2.0"},
                "captures": [],
                "annotations": [],
            },
            "replay reads",
        ),
        (
            {
                "global": {"core:datatype": "ci8", "core:version": "1.2.0", "core:num_channels": 2},
                "captures": [],
                "annotations": [],
            },
            "num_channels",
        ),
    ],
)
def test_bad_metadata_is_one_line_error(doc, match):
    with pytest.raises(ValueError, match=match) as err:
        check_meta(doc, "x.sigmf-meta")
    assert "\n" not in str(err.value) and str(err.value).startswith("x.sigmf-meta: ")


@pytest.mark.parametrize("name", ["cf32_le", "ci16_le"])
def test_interrupted_recording_is_hashed_after_its_last_write(tmp_path, name):
    """tb.stop() on a running graph (rkdsc rx --duration), `frames` unconnected: the metadata is
    written all the same, and its hash is that of the file's final bytes."""
    import time

    from gnuradio import analog, blocks, gr

    from rkdsc_gr.sigmf_io import ota_sigmf_sink

    tb = gr.top_block()
    src = analog.noise_source_c(analog.GR_GAUSSIAN, 0.3, 5)
    throttle = blocks.throttle(gr.sizeof_gr_complex, 2e5)
    rec = ota_sigmf_sink(str(tmp_path / "live"), 2e5, 915e6, "test", datatype=name)
    tb.connect(src, throttle, rec)
    tb.start()
    deadline = time.monotonic() + 30
    items = 20000 * (2 if name == "ci16_le" else 1)  # the ci16 file sink counts shorts
    while rec.file.nitems_read(0) < items and time.monotonic() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    data, meta = sigmf_paths(tmp_path / "live")
    handle = sigmf.sigmffile.fromfile(str(meta))  # raises if the hash does not match
    handle.validate()
    assert handle.sample_count >= 20000
    assert handle.get_global_field("core:sha512") == hashlib.sha512(data.read_bytes()).hexdigest()


def test_cli_takes_the_rate_from_the_metadata(burst, tiny_bundle, tmp_path):
    """`rkdsc rx --mode file` on a recording at 1 MS/s: the metadata's rate, not the radio
    default; an explicit --samp-rate that contradicts it is refused (exit 2)."""
    from rkdsc.cli import main

    base = tmp_path / "slow"
    for src, dst in zip(sigmf_paths(burst), sigmf_paths(base)):
        shutil.copy(src, dst)
    doc = json.loads(sigmf_paths(base)[1].read_text())
    doc["global"]["core:sample_rate"] = 1e6
    sigmf_paths(base)[1].write_text(json.dumps(doc))
    out = tmp_path / "rx.json"
    common = ["rx", "--mode", "file", "--input", str(base), "--bundle", tiny_bundle]
    assert main([*common, "--rate", str(RATE), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["decisions"] == N_FRAMES
    assert main([*common, "--samp-rate", "2e6"]) == 2
