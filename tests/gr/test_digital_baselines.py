"""gr-fec codes of the digital baselines: bit-exact round trips at high SNR (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gnuradio


@pytest.fixture(scope="module")
def codes():
    from rkdsc_gr.digital_baselines import make_code

    return {
        "polar32_4": make_code("polar", n=32, k=4),
        "polar64_32": make_code("polar", n=64, k=32),
        "ldpc": make_code("ldpc", alist="n_0300_k_0152_gap_03.alist"),
    }


@pytest.mark.parametrize("name", ["polar32_4", "polar64_32", "ldpc"])
def test_noiseless_llr_round_trip(codes, name) -> None:
    code = codes[name]
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (40, code.k)).astype(np.uint8)
    cw = code.encode(bits)
    assert cw.shape == (40, code.n) and set(np.unique(cw)) <= {0, 1}
    llr = (1.0 - 2.0 * cw).astype(np.float32) * 8.0  # log P(0)/P(1): positive for bit 0
    np.testing.assert_array_equal(code.decode(llr), bits)


@pytest.mark.parametrize(("name", "m"), [("polar32_4", 4), ("polar64_32", 16), ("ldpc", 4)])
def test_high_snr_link_is_bit_exact(codes, name, m) -> None:
    from rkdsc_core.eval.baselines.modem import coded_link

    code = codes[name]
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, (64, 2 * code.k)).astype(np.uint8)  # 2 codewords per image
    out = coded_link(bits, code, m, "awgn", 30.0, 0)
    np.testing.assert_array_equal(out, bits)
    low = coded_link(bits, code, m, "awgn", -10.0, 0)
    assert (low != bits).any()  # the cliff: below it the frames fail


def test_label_and_feature_digital_on_tiny_bundle(tmp_path) -> None:
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.eval import baselines as bl
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle
    from rkdsc_gr.digital_baselines import make_code

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (100, 28, 28, 1), dtype=np.uint8)
    cls = bl.student_head_classes(b, bl.student_features(b, imgs))
    data = ImageArrays("t", "test", imgs[:50], cls[:50], b.classes)  # labels = TX decisions
    train = ImageArrays("t", "train", imgs[50:], cls[50:], b.classes)
    curves, info = bl.run_baselines(
        b, data, train, "awgn", [-15, 30], 16, ["label-digital", "feature-digital"], make_code
    )
    assert curves["label-digital"][1]["accuracy"] == 1.0  # error-free label at 30 dB
    assert info["label-digital"]["channel_uses"] == 16
    assert curves["feature-digital"][1]["accuracy"] == pytest.approx(
        info["feature-digital"]["quantised_clean_accuracy"]
    )
    assert curves["label-digital"][0]["accuracy"] < 1.0


def test_image_digital_decodes_at_high_snr(tmp_path) -> None:
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.eval import baselines as bl
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle
    from rkdsc_gr.digital_baselines import make_code

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    rng = np.random.default_rng(4)
    imgs = (rng.integers(0, 4, (12, 28, 28, 1)) * 60).astype(np.uint8)
    data = ImageArrays("t", "test", imgs, np.zeros(12, np.int64), b.classes)
    pts, info = bl.image_digital(
        bl.BaselineRun(b, data, data, "awgn", [30.0], 16, make_code), max_images=12
    )
    assert pts[0]["accuracy"] == pytest.approx(info["decoded_clean_accuracy"])
    assert info["channel_uses"] > 16


def test_report_baseline_set_and_plot(tmp_path) -> None:
    """`rkdsc eval --baselines …` path: report.run_baseline_set fills the curves and the info."""
    import argparse

    from rkdsc_core.data.datasets import fmnist_source_dir, load_dataset
    from rkdsc_core.errors import RkdscError
    from rkdsc_core.eval.report import plot_curves, run_baseline_set
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle
    from rkdsc_gr.digital_baselines import make_code

    try:
        fmnist_source_dir()
    except RkdscError:
        pytest.skip("Fashion-MNIST not installed")
    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    ds = b.manifest["dataset"]["name"]
    data = load_dataset(ds, "test", None, limit=40)
    args = argparse.Namespace(
        baselines="no-cat,label-digital,capacity-bound", snr=[-10.0, 30.0], seed=0, data_root=None
    )
    rep = {"dataset": ds, "split": "test", "n": 40, "channel": "awgn", "clean_accuracy": 0.5}
    with pytest.raises(RkdscError, match="channel-code factory"):
        run_baseline_set(b, data, args, ["awgn"], [16], rep)  # the core has no gr-fec of its own
    curves = run_baseline_set(b, data, args, ["awgn"], [16], rep, make_code)
    assert set(curves) == {"no-cat", "label-digital", "capacity-bound"}
    assert rep["baseline_info"]["capacity-bound"]["snr_db_threshold"] == pytest.approx(-8.1, 0.01)
    rep.update(curves=[{"channel": "awgn", "rate": 16, "points": curves["no-cat"]}])
    rep["baselines"] = curves
    assert plot_curves(rep, str(tmp_path / "p.png")).stat().st_size > 0
    args.baselines = "nope"
    with pytest.raises(RkdscError):
        run_baseline_set(b, data, args, ["awgn"], [16], rep)
