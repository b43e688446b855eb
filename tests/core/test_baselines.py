"""Numpy parts of the baselines (issue 11): QAM mapping and LLRs, capacity bound, feature quantiser,
JPEG with a shared header, and the no-CAT analog baseline on a tiny bundle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rkdsc_core.eval import baselines as bl
from rkdsc_core.eval.baselines import modem
from rkdsc_core.eval.baselines import source_coding as sc


@pytest.mark.parametrize("m", [4, 16, 64])
def test_qam_round_trip_and_unit_power(m: int) -> None:
    pts, labels = modem.qam_constellation(m)
    assert np.isclose(np.mean(np.abs(pts) ** 2), 1.0)
    assert len({tuple(x) for x in labels}) == m  # every label once
    rng = np.random.default_rng(0)
    bps = int(math.log2(m))
    bits = rng.integers(0, 2, (50, 8 * bps)).astype(np.uint8)
    y = modem.modulate(bits, m)
    assert y.shape == (50, 8) and y.dtype == np.complex64
    llr = modem.demap_llr(y, np.full(y.shape, 0.01), m)
    np.testing.assert_array_equal((llr < 0).astype(np.uint8), bits)  # LLR = log P(0)/P(1)


def test_gray_neighbours_differ_in_one_bit() -> None:
    pts, labels = modem.qam_constellation(16)
    d = np.abs(pts[:, None] - pts[None])
    nearest = np.isclose(d, d[d > 0].min())
    for i, j in zip(*np.nonzero(nearest)):
        assert np.sum(labels[i] != labels[j]) == 1


def test_capacity_bound() -> None:
    thr = bl.capacity_snr_db(16, 10)
    assert thr == pytest.approx(10 * math.log10(2 ** (math.log2(10) / 16) - 1))
    assert thr == pytest.approx(-8.10, abs=0.01)
    pts = bl.capacity_bound_curve([thr - 0.1, thr + 0.1], 16, 10, "awgn", 0.9)
    assert [p["accuracy"] for p in pts] == pytest.approx([0.1, 0.9])
    ray = bl.capacity_bound_curve([-10, 0, 30], 16, 10, "rayleigh", 0.9)
    acc = [p["accuracy"] for p in ray]
    assert acc[0] < acc[1] < acc[2] < 0.9 and acc[2] > 0.89


def test_int_bits_round_trip() -> None:
    v = np.arange(16)
    np.testing.assert_array_equal(sc.bits_to_int(sc.int_to_bits(v, 4)), v)


def test_feature_quantizer_round_trip() -> None:
    rng = np.random.default_rng(1)
    f = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    q = bl.FeatureQuantizer.fit(f, dims=4, bits=3)
    bits = q.encode(f)
    assert bits.shape == (400, 12) and q.payload_bits == 12
    rec = q.decode(bits)
    assert rec.shape == f.shape
    np.testing.assert_array_equal(q.encode(rec), bits)  # centroids fall in their own bins
    err = np.mean((rec - f) ** 2) / np.var(f, 0).sum()
    assert err < 1.0


def test_jpeg_shared_header_round_trip() -> None:
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    parts = [sc.jpeg_split(im, 50) for im in imgs]
    assert len({h for h, _ in parts}) == 1  # header shared by all images
    for im, (h, s) in zip(imgs, parts):
        out = sc.jpeg_join(h, sc.bits_to_bytes(sc.bytes_to_bits(s)), (28, 28, 1))
        assert out is not None and out.shape == (28, 28, 1)
        assert np.mean(np.abs(out.astype(float) - im)) < 60
    sc.jpeg_join(parts[0][0], b"\x00" * 5, (28, 28, 1))  # a corrupted scan must not raise


def test_no_cat_and_capacity_on_tiny_bundle(tmp_path) -> None:
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (120, 28, 28, 1), dtype=np.uint8)
    cls = bl.student_head_classes(b, bl.student_features(b, imgs))
    data = ImageArrays("t", "test", imgs[:60], cls[:60], b.classes)
    train = ImageArrays("t", "train", imgs[60:], cls[60:], b.classes)
    curves, info = bl.run_baselines(
        b, data, train, "awgn", [-5, 40], 16, ["no-cat", "capacity-bound"], None
    )
    assert set(curves) == {"no-cat", "capacity-bound"}
    assert info["no-cat"]["channel_uses"] == 16
    for pts in curves.values():
        assert [p["snr_db"] for p in pts] == [-5.0, 40.0]
        assert all(0.0 <= p["accuracy"] <= 1.0 for p in pts)
    with pytest.raises(ValueError):
        bl.run_baselines(b, data, train, "awgn", [0], 16, ["no-such-baseline"], None)
    torch.manual_seed(0)


def test_deepjscc_cnn_trains_and_sweeps(tmp_path) -> None:
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.eval.baselines import BaselineRun
    from rkdsc_core.eval.learned_baselines import deepjscc_cnn
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
    data = ImageArrays("t", "test", imgs, rng.integers(0, 10, 64), b.classes)
    run = BaselineRun(b, data, data, "rayleigh", [0.0, 10.0], 8)
    pts, info = deepjscc_cnn(run, steps=3, batch_size=16)
    assert [p["snr_db"] for p in pts] == [0.0, 10.0]
    assert info["train_steps"] == 3 and info["channel_uses"] == 8 and info["params"] > 0


def test_single_stage_and_teacher_over_channel_run(tmp_path) -> None:
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.eval.baselines import BaselineRun
    from rkdsc_core.eval.learned_baselines import single_stage, teacher_over_channel
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    class FakeTeacher(torch.nn.Module):  # the tiny bundle has no teacher: a linear embedder
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(28 * 28, 24)

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.flatten(1))

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    b._teacher = FakeTeacher()
    rng = np.random.default_rng(6)
    imgs = rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
    data = ImageArrays("t", "test", imgs, rng.integers(0, 10, 32), b.classes)
    for fn in (single_stage, teacher_over_channel):
        pts, info = fn(BaselineRun(b, data, data, "awgn", [10.0], 4), steps=2, batch_size=8)
        assert 0.0 <= pts[0]["accuracy"] <= 1.0 and info["train_steps"] == 2


def test_unknown_baseline_fails_before_any_measurement(tmp_path, monkeypatch, capsys) -> None:
    """A misspelt --baselines name is a one-line error raised before the bundle is even read."""
    from rkdsc import cli
    from rkdsc_core.eval import report

    def no_bundle(*_a, **_k):
        raise AssertionError("the bundle was loaded before the baseline names were checked")

    monkeypatch.setattr(report, "load_bundle", no_bundle)
    rc = cli.main(["eval", "--bundle", str(tmp_path), "--baselines", "no-cat,deepjsc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "unknown baseline 'deepjsc'" in err[0]
