"""Issue 19's equal terms and CAT ablations: the DeepJSCC-CNN decoder's per-symbol SNR input, the
MLP codec of the CAT's size, and the ablation driver end to end on a tiny bundle (2 steps)."""

from __future__ import annotations

import json
import runpy
import sys

import numpy as np
import pytest
import torch

from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.codec.mlp import MLPCodec
from rkdsc_core.models.deepjscc_cnn import DeepJsccCnn
from rkdsc_core.torch_utils import count_params


def test_deepjscc_decoder_reads_the_per_symbol_snr() -> None:
    torch.manual_seed(0)
    m = DeepJsccCnn(1, 8, 10, width=8, snr_input=True).eval()
    y = m.encode(torch.randn(4, 1, 28, 28))
    lo, hi = m.decode(y, torch.full((4,), -5.0)), m.decode(y, torch.full((4,), 15.0))
    assert not torch.allclose(lo, hi)  # the SNR reaches the decoder
    per_symbol = torch.full((4, 8), 15.0)
    torch.testing.assert_close(m.decode(y, per_symbol), hi)  # [B] broadcasts as [B, K]
    per_symbol[:, 0] = -5.0
    assert not torch.allclose(m.decode(y, per_symbol), hi)  # each symbol's own SNR counts
    with pytest.raises(ValueError, match="snr_db"):
        m.decode(y)


def test_deepjscc_without_snr_input_is_the_old_decoder() -> None:
    """Bundles trained before issue 19 (no `snr_input` in their spec) load and ignore the SNR."""
    from rkdsc_core.bundle import BUILDERS

    old = BUILDERS["deepjscc_cnn"]({"in_channels": 1, "rate": 8, "num_classes": 10, "width": 8})
    assert old.decoder[0].in_features == 16
    y = old.encode(torch.randn(2, 1, 28, 28))
    torch.testing.assert_close(old.decode(y), old.decode(y, torch.full((2,), 3.0)))
    new = BUILDERS["deepjscc_cnn"](
        {"in_channels": 1, "rate": 8, "num_classes": 10, "width": 8, "snr_input": True}
    )
    assert new.decoder[0].in_features == 24


def test_mlp_codec_matches_the_cat_size_and_rate_logic() -> None:
    torch.manual_seed(0)
    cfg = CATConfig(feature_dim=64, k_max=16, rates=(4, 8, 16), tokens=8, d_model=32, heads=4)
    cat = CATCodec(cfg)
    mlp = MLPCodec(cfg, count_params(cat.encoder), count_params(cat.decoder))
    for a, b in ((mlp.encoder, cat.encoder), (mlp.decoder, cat.decoder)):
        assert abs(count_params(a) - count_params(b)) <= 0.03 * count_params(b)
    f = torch.randn(6, 64)
    x = mlp.encode(f, torch.tensor([4, 4, 8, 8, 16, 16]))
    power = (x.abs() ** 2).sum(1) / torch.tensor([4, 4, 8, 8, 16, 16])
    torch.testing.assert_close(power, torch.ones(6))
    assert torch.all(x[:2, 4:] == 0)  # nested: nothing sent past k
    # decoding the k received symbols alone = decoding them zero-padded with the rest masked
    y, snr = x[:, :8], torch.full((6, 8), 3.0)
    mask = torch.zeros(6, 16, dtype=torch.bool)
    mask[:, :8] = True
    padded = torch.nn.functional.pad(y, (0, 8))
    torch.testing.assert_close(
        mlp.decode_received(y, snr), mlp.decode(padded, torch.full((6, 16), 3.0), mask)
    )
    told = mlp.encode(f, 8, 10.0)
    assert not torch.allclose(told, mlp.encode(f, 8))  # the encoder's SNR input counts


def test_ablation_driver_on_a_tiny_bundle(tmp_path, monkeypatch) -> None:
    from rkdsc_core.testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "b", feature_dim=256, with_teacher=True)
    out = tmp_path / "a.json"
    argv = ["cat_ablations.py", "--bundle", str(bundle), "--store", str(tmp_path / "store")]
    argv += ["--work", str(tmp_path / "w"), "--json", str(out), "--steps", "2", "--batch", "8"]
    argv += ["--stage1-epochs", "1", "--train-images", "64", "--train-limit", "120", "--n", "40"]
    argv += ["--seeds", "0,1", "--reference-seeds", "0,2", "--snr=-10,10"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path("scripts/cat_ablations.py", run_name="__main__")
    rep = json.loads(out.read_text())
    rows = {r["row"]: r for r in rep["rows"]}
    assert set(rows) == {
        "reference",
        "decoder-no-snr",
        "mlp-codec",
        "per-k16",
        "encoder-told-snr",
        "stage1-shipped-loss",
        "stage1-mse-only",
        "shipped-bundle",
        "reference-small",
    }
    assert rep["split"] == "test" and rep["n"] == 40 and rep["budget"]["stage2_steps"] == 2
    for r in rows.values():
        assert len(r["points"]) == 4  # 2 channels × 2 SNRs
        for p in r["points"]:
            lo, hi = p["ci95"]
            assert lo <= p["accuracy"] <= hi
            assert (r["vs"] is None) == ("p_vs" not in p)
    ref = rows["reference-small"]
    assert (
        ref["seeds"] == [0, 1]
        and rows["reference"]["seeds"] == [0, 2]
        and all(len(p["seed_accuracies"]) == 2 for p in ref["points"])
    )
    assert rows["stage1-mse-only"]["vs"] == "stage1-shipped-loss"
    sys.path.insert(0, "scripts")
    try:
        from results_tables import ablation_table
    finally:
        sys.path.remove("scripts")
    lines = ablation_table(rep).splitlines()
    assert sum(line.startswith("| ") for line in lines) == 1 + 9 + 2  # head, rows, two seed spreads
    assert any("mean ± sd" in line for line in lines)
    # resumable: a second run reads every row back instead of training it again
    first = out.read_text()
    monkeypatch.setattr("torch.optim.AdamW.step", lambda *a, **k: pytest.fail("retrained"))
    runpy.run_path("scripts/cat_ablations.py", run_name="__main__")
    again = json.loads(out.read_text())
    assert again["rows"] == json.loads(first)["rows"]
    assert np.isfinite(ref["points"][0]["seed_std"])


def test_put_baselines_replaces_one_baseline_in_a_bundle(tmp_path) -> None:
    from safetensors.torch import save_file

    from rkdsc_core.bundle import Bundle
    from rkdsc_core.eval.learned_baselines import trained_baseline
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "b")
    before = load_bundle(bundle)
    run = tmp_path / "run" / "baselines" / "deepjscc-cnn"
    run.mkdir(parents=True)
    spec = {"in_channels": 1, "rate": 8, "num_classes": 10, "width": 8, "snr_input": True}
    model = DeepJsccCnn(**spec)
    save_file(model.state_dict(), str(run / "model.safetensors"))
    metrics = {
        "rate": 8,
        "epochs": 3,
        "params": count_params(model),
        "components": {"model": {"builder": "deepjscc_cnn", "spec": spec, "params": 1}},
        "train_channel_mix": {"channels": ["awgn"]},
        "recipe": {"decoder_snr_input": True},
        "provenance": {"git_sha": "abc"},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    sys.path.insert(0, "scripts")
    try:
        from put_baselines import put
    finally:
        sys.path.remove("scripts")
    put(bundle, tmp_path / "run", ["deepjscc-cnn"])
    after = Bundle(bundle)  # read afresh (load_bundle caches per process); hashes checked
    mods, info = trained_baseline(after, "deepjscc-cnn", 8)
    assert info["recipe"] == {"decoder_snr_input": True} and info["epochs"] == 3
    for k, v in model.state_dict().items():
        torch.testing.assert_close(mods["model"].state_dict()[k], v)
    for k, v in before.cat.state_dict().items():  # the rest of the bundle is untouched
        torch.testing.assert_close(after.cat.state_dict()[k], v)
    with pytest.raises(SystemExit, match="no trained baseline"):
        put(bundle, tmp_path / "run", ["single-stage"])


def test_merge_baselines_takes_over_named_baselines_of_a_paired_run() -> None:
    sys.path.insert(0, "scripts")
    try:
        from merge_baselines import merge
    finally:
        sys.path.remove("scripts")

    def run(acc_b: float, sha: str) -> dict:
        pts = [{"snr_db": 0.0, "accuracy": 0.9, "ci95": [0.8, 0.95]}]
        bpts = [{"snr_db": 0.0, "accuracy": acc_b, "p_vs_rkdsc": 0.001, "vs_rkdsc": "win"}]
        other = [{"snr_db": 0.0, "accuracy": 0.5, "p_vs_rkdsc": 0.5, "vs_rkdsc": "tie"}]
        return {
            "bundle": "default",
            "dataset": "fmnist",
            "split": "test",
            "n": 100,
            "channel": "awgn",
            "rate": 16,
            "points": pts,
            "baselines": {"deepjscc-cnn": bpts, "no-cat": other},
            "baseline_info": {"deepjscc-cnn": {"epochs": sha}, "no-cat": {}},
            "provenance": {"git_sha": sha, "command": f"rkdsc eval {sha}"},
        }

    old, new = run(0.7, "old"), run(0.6, "new")
    new["baselines"]["no-cat"][0]["accuracy"] = 0.1  # not taken over
    out = merge(old, new, ["deepjscc-cnn"])
    assert out["baselines"]["deepjscc-cnn"][0]["accuracy"] == 0.6
    assert out["baselines"]["no-cat"][0]["accuracy"] == 0.5
    assert out["baseline_info"]["deepjscc-cnn"] == {"epochs": "new"}
    assert out["provenance"]["git_sha"] == "old"
    assert out["provenance"]["merged"][0]["names"] == ["deepjscc-cnn"]
    assert "wins at 0 dB" in out["comparison"]["deepjscc-cnn"]
    assert old["baselines"]["deepjscc-cnn"][0]["accuracy"] == 0.7  # input left alone
    unpaired = run(0.6, "new")
    unpaired["points"][0]["accuracy"] = 0.91  # other draws or images: refused
    with pytest.raises(ValueError, match="RKD-SC's point"):
        merge(old, unpaired, ["deepjscc-cnn"])
    kept = merge(old, unpaired, ["deepjscc-cnn"], skip_unpaired=True)
    assert kept["baselines"]["deepjscc-cnn"] == []  # its one SNR was not paired: left out
    assert kept["provenance"]["merged"][0]["left_out_snr_db"] == [0.0]
    assert kept["points"] == old["points"]
    with pytest.raises(ValueError, match="'n'"):
        merge(old, {**new, "n": 50}, ["deepjscc-cnn"])


def test_warm_start_grows_the_deepjscc_decoder_without_changing_its_output() -> None:
    from rkdsc_core.errors import RkdscError
    from rkdsc_train.stages.baselines import grow_into

    torch.manual_seed(0)
    old = DeepJsccCnn(1, 8, 10, width=8).eval()
    new = DeepJsccCnn(1, 8, 10, width=8, snr_input=True).eval()
    grow_into(new, old.state_dict())
    y = old.encode(torch.randn(3, 1, 28, 28))
    torch.testing.assert_close(
        new.encode(torch.zeros(3, 1, 28, 28)), old.encode(torch.zeros(3, 1, 28, 28))
    )
    torch.testing.assert_close(new.decode(y, torch.full((3,), 7.0)), old.decode(y))
    with pytest.raises(RkdscError, match="shape"):
        grow_into(old, new.state_dict())  # inputs never shrink


def test_merge_baselines_measures_a_paired_run_on_a_tiny_bundle(tmp_path) -> None:
    from rkdsc_core.testing import make_tiny_bundle

    sys.path.insert(0, "scripts")
    try:
        from merge_baselines import measure, merge
    finally:
        sys.path.remove("scripts")
    bundle = str(make_tiny_bundle(tmp_path / "b"))
    skeleton = {
        "bundle": "tiny",
        "dataset": "fmnist",
        "split": "test",
        "n": 40,
        "channel": "rayleigh",
        "rate": 8,
        "points": [{"snr_db": -5.0}, {"snr_db": 10.0}],
        "provenance": {"seed": 3, "command": "rkdsc eval …"},
    }
    old = measure(skeleton, ["no-cat"], bundle)
    assert [p["snr_db"] for p in old["baselines"]["no-cat"]] == [-5.0, 10.0]
    assert all("p_vs_rkdsc" in p for p in old["baselines"]["no-cat"])
    again = measure(old, ["no-cat"], bundle)  # keyed draws: the same RKD-SC points
    out = merge(old, again, ["no-cat"])
    assert out["baselines"]["no-cat"] == old["baselines"]["no-cat"]
    assert out["provenance"]["merged"][0]["names"] == ["no-cat"]


def test_remeasured_replaces_a_whole_snr_column_from_one_run() -> None:
    sys.path.insert(0, "scripts")
    try:
        from merge_baselines import remeasured
    finally:
        sys.path.remove("scripts")

    def pt(snr: float, acc: float, baseline: bool = True) -> dict:
        p = {"snr_db": snr, "accuracy": acc, "ci95": [acc - 0.01, acc + 0.01]}
        return {**p, "p_vs_rkdsc": 0.5, "vs_rkdsc": "tie"} if baseline else p

    old = {
        "channel": "awgn",
        "rate": 16,
        "points": [pt(0.0, 0.9, False), pt(24.0, 0.93, False)],
        "curves": [{"channel": "awgn", "rate": 16, "points": []}],
        # a merge left deepjscc's 24 dB point out: the column is filled again
        "baselines": {"deepjscc-cnn": [pt(0.0, 0.8)], "no-cat": [pt(0.0, 0.5), pt(24.0, 0.6)]},
        "provenance": {"git_sha": "old"},
    }
    new = {
        "points": [pt(24.0, 0.92, False)],
        "baselines": {"deepjscc-cnn": [pt(24.0, 0.85)], "no-cat": [pt(24.0, 0.61)]},
        "provenance": {"git_sha": "new", "command": "merge_baselines …"},
    }
    out = remeasured(old, new, [24.0])
    assert [p["accuracy"] for p in out["points"]] == [0.9, 0.92]
    assert out["curves"][0]["points"] == out["points"]
    assert [p["accuracy"] for p in out["baselines"]["deepjscc-cnn"]] == [0.8, 0.85]
    assert [p["accuracy"] for p in out["baselines"]["no-cat"]] == [0.5, 0.61]
    assert out["provenance"]["merged"][-1]["remeasured_snr_db"] == [24.0]
    assert old["points"][1]["accuracy"] == 0.93  # input left alone
    with pytest.raises(ValueError, match="lacks baselines"):
        remeasured(old, {**new, "baselines": {"no-cat": []}}, [24.0])


def test_results_table_stars_the_points_that_were_not_measured() -> None:
    sys.path.insert(0, "scripts")
    try:
        from results_tables import table
    finally:
        sys.path.remove("scripts")
    rep = {
        "rate": 16,
        "points": [{"snr_db": 0.0, "accuracy": 0.9, "ci95": [0.85, 0.94]}],
        "baselines": {
            "measured": [{"snr_db": 0.0, "accuracy": 0.5, "ci95": [0.4, 0.6], "vs_rkdsc": "win"}],
            "bound": [{"snr_db": 0.0, "accuracy": 0.93, "ci95": None, "p_vs_rkdsc": None}],
            "older-json": [{"snr_db": 0.0, "accuracy": 0.1, "p_vs_rkdsc": None}],
        },
    }
    rows = table(rep).splitlines()
    assert rows[2] == "| **RKD-SC** (95% CI) | 90.0 (85.0–94.0) |"
    assert rows[3:] == ["| measured | 50.0 ▼ |", "| bound | 93.0* |", "| older-json | 10.0* |"]
