"""Paired evaluation (issue 19): every method at one point sees the same channel draws, a point two
sweeps share scores the same, intervals and exact McNemar tests behave."""

import numpy as np
import pytest
import torch

from rkdsc_core.channels import draws as draws_mod
from rkdsc_core.eval import stats


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    b = load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "b"))
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (60, 28, 28, 1), dtype=np.uint8)
    data = ImageArrays("t", "test", imgs[:40], rng.integers(0, 10, 40), b.classes)
    train = ImageArrays("t", "train", imgs[40:], rng.integers(0, 10, 20), b.classes)
    return b, data, train


def _record(monkeypatch) -> list:
    seen = []
    real = draws_mod.draw

    def spy(channel, key, image_index, num_symbols, dtype=torch.complex64):
        h, n = real(channel, key, image_index, num_symbols, dtype)
        seen.append((key, np.asarray(image_index).copy(), h.clone(), n.clone()))
        return h, n

    monkeypatch.setattr(draws_mod, "draw", spy)
    return seen


def test_rkdsc_and_baselines_see_identical_h_and_noise(tiny, monkeypatch):
    from rkdsc_core.eval import baselines as bl
    from rkdsc_core.eval.harness import snr_sweep
    from rkdsc_core.eval.learned_baselines import _sweep_cat

    b, data, train = tiny
    seen = _record(monkeypatch)
    snr_sweep(b, data, "rayleigh", [2.0], 8, seed=5)
    bl.no_cat(bl.BaselineRun(b, data, train, "rayleigh", [2.0], 8, seed=5))

    def feats(sl):
        return torch.from_numpy(bl.student_features(b, data.images[sl]))

    _sweep_cat(b.cat, b.head, feats, bl.BaselineRun(b, data, train, "rayleigh", [2.0], 8, seed=5))
    assert len(seen) == 3
    (k0, i0, h0, n0), *others = seen
    for key, idx, h, n in others:
        assert key == k0 and np.array_equal(idx, i0)
        assert torch.equal(h, h0) and torch.equal(n, n0)


def test_a_point_shared_by_two_sweeps_scores_the_same(tiny):
    from rkdsc_core.eval.harness import rate_sweep, snr_sweep

    b, data, _ = tiny
    by_snr = snr_sweep(b, data, "rayleigh", [-4.0, 0.0], 8, seed=1)[1]
    by_rate = {p["rate"]: p for p in rate_sweep(b, data, "rayleigh", 0.0, [4, 8, 16], seed=1)}[8]
    assert by_snr["accuracy"] == by_rate["accuracy"]
    assert np.array_equal(by_snr["correct"], by_rate["correct"])


def test_wilson_interval_and_exact_mcnemar():
    lo, hi = stats.wilson(90, 100)
    assert 0.82 < lo < 0.83 and 0.94 < hi < 0.95  # Wilson (0.8256, 0.9448)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == pytest.approx(1.0)
    a = np.ones(100, bool)
    b = a.copy()
    b[:10] = False  # 10 discordant pairs, all one way: p = 2 / 2**10
    assert stats.mcnemar_p(a, b) == pytest.approx(2 / 1024)
    assert stats.mcnemar_p(a, a) == 1.0
    c = a.copy()
    c[:3], c[3:6] = False, False  # 6 discordant pairs against `a`, all one way
    b2 = a.copy()
    b2[:3] = False
    assert stats.mcnemar_p(c, b2) == pytest.approx(0.25)  # 3 vs 0 discordant: 2/8
    with pytest.raises(ValueError, match="shape"):
        stats.mcnemar_p(a, a[:5])


def test_compare_gives_verdicts_from_the_test_not_the_difference():
    n = 400
    ref = np.ones(n, bool)
    ref[:40] = False  # RKD-SC 90%
    near = ref.copy()
    near[40:44] = False  # 89%: 4 discordant pairs, p = 0.125 → tie
    far = ref.copy()
    far[40:80] = False  # 80%: 40 discordant pairs → win
    rk = [{"snr_db": 0.0, "accuracy": 0.9, "correct": ref}]
    got = {
        name: stats.compare(rk, [{"snr_db": 0.0, "accuracy": float(c.mean()), "correct": c}])
        for name, c in (("near", near), ("far", far))
    }
    assert got["near"][0]["vs_rkdsc"] == "tie" and got["far"][0]["vs_rkdsc"] == "win"
    assert "correct" not in got["far"][0] and len(got["far"][0]["ci95"]) == 2
    text = stats.summary(got)
    assert text["near"].startswith("RKD-SC ties at 0 dB") and "wins at 0 dB" in text["far"]


def test_two_identical_eval_runs_write_identical_points(tmp_path, monkeypatch):
    """`rkdsc eval … --baselines …` twice: the same points, with intervals and paired p-values."""
    import argparse
    import json

    from rkdsc_core.eval import report
    from rkdsc_core.eval.report import run_eval
    from rkdsc_core.testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "b")
    # the tiny bundle has no teacher to measure
    monkeypatch.setattr(report, "clean_accuracy", lambda *_: {"clean_accuracy": 0.5})
    reps = []
    for i in range(2):
        args = argparse.Namespace(
            bundle=str(bundle), split="test", data_root=None, n=60, rate=[8], clean=False,
            channel=["rayleigh"], snr=[-5.0, 5.0], seed=0, baselines="no-cat,capacity-bound",
            rate_snr=5.0, json=str(tmp_path / f"r{i}.json"), plot=None,
        )  # fmt: skip
        run_eval(args)
        reps.append(json.loads((tmp_path / f"r{i}.json").read_text()))
    a, b = reps
    assert a["points"] == b["points"] and a["baselines"] == b["baselines"]
    assert a["rate_curves"] == b["rate_curves"]
    assert all(len(p["ci95"]) == 2 for p in a["points"] + a["baselines"]["no-cat"])
    assert all(0 <= p["p_vs_rkdsc"] <= 1 for p in a["baselines"]["no-cat"])
    bound = a["baselines"]["capacity-bound"]  # analytic: both keys present, null
    assert all(p["p_vs_rkdsc"] is None and p["ci95"] is None for p in bound)
    # the rate sweep's K=8 point at 5 dB is the SNR sweep's 5 dB point
    k8 = next(p for p in a["rate_curves"][0]["points"] if p["rate"] == 8)
    assert k8["accuracy"] == a["points"][1]["accuracy"]


def test_transmitter_and_receiver_sizes_cover_the_link(tiny):
    """`rkdsc eval --clean`'s sizes: transmitter = student + CAT encoder, receiver = CAT decoder +
    head, together every parameter of the link (none hides outside the encoder/decoder split)."""
    from rkdsc_core.eval.sizes import link_sizes, model_flops
    from rkdsc_core.torch_utils import count_params

    b, _, _ = tiny

    class Teacher(torch.nn.Linear):  # the tiny bundle has no teacher: any module counts
        def logits(self, x):
            return self(x.flatten(1))

    b._teacher = Teacher(784, 1000)
    sizes = link_sizes(b, model_flops(b))
    total = count_params(b.student) + count_params(b.cat) + count_params(b.head)
    assert sizes["transmitter_params"] + sizes["receiver_params"] == total
    assert sizes["transmitter_params"] > count_params(b.student)
    assert sizes["transmitter_param_ratio"] == sizes["transmitter_params"] / 785000
    assert sizes["transmitter_flops"] > sizes["receiver_flops"] > 0


@pytest.mark.parametrize("snr_input", [False, True])
def test_baseline_sizes_count_a_deepjscc_decoder_with_or_without_its_snr_input(
    monkeypatch, snr_input
):
    """`rkdsc eval --clean` sizes every shipped learned baseline: a DeepJSCC-CNN whose decoder
    reads the per-symbol SNR (issue 19's equal terms) must be counted too (it raised before)."""
    from types import SimpleNamespace

    from rkdsc_core.eval import learned_baselines, sizes
    from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn

    model = DeepJsccCnn(1, 8, 10, width=8, snr_input=snr_input)
    monkeypatch.setattr(
        learned_baselines, "trained_baseline", lambda b, name, k: ({"model": model}, {})
    )
    student = torch.nn.Linear(4, 4)
    student.head = torch.nn.Linear(4, 10)  # the digital rows count the student and its head
    bundle = SimpleNamespace(
        manifest={"baselines": {"deepjscc-cnn": {"rate": 8}}},
        image_shape=(28, 28, 1),
        student=student,
    )
    got = sizes.baseline_sizes(bundle)["deepjscc-cnn"]
    assert got["rate"] == 8
    assert got["receiver_params"] == sum(p.numel() for p in model.decoder.parameters())
    assert got["receiver_flops"] > 0 and got["transmitter_flops"] > 0
