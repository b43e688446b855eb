"""The smoke pipeline end to end (every stage, tiny data), and a stage killed mid-run resumes from
its last checkpoint instead of starting over."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from core_helpers import REPO, smoke_train_cmd

from rkdsc_core.runtime import Bundle


def _train(out: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = smoke_train_cmd(out, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    t0 = time.time()
    res = _train(out)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, time.time() - t0


def test_every_stage_runs_and_exports_a_loadable_bundle(smoke_run):
    out, seconds = smoke_run
    for stage in ("teacher", "search", "stage1", "stage2", "baselines", "export"):
        assert (out / stage / "config.yaml").exists(), stage
    b = Bundle(out / "bundle")
    m = b.manifest
    learned = ("deepjscc-cnn", "single-stage", "teacher-over-channel")
    assert set(m["baselines"]) == set(learned)
    parts = {k for e in m["baselines"].values() for k in e["components"].values()}
    assert set(m["files"]) == {"teacher", "student", "cat", "head"} | parts
    assert 0 <= m["metrics"]["clean_accuracy"] <= 1 and m["metrics"]["teacher_params"] > 0
    assert m["rate_table"]["awgn"]["rates"] == [4, 8, 16]
    assert m["rate_table"]["awgn"]["split"] == "validation"  # never the test split (issue 18)
    assert b.stop_rule().k_max == 16
    assert m["provenance"]["git_sha"] and m["provenance"]["config"]["seed"] == 0
    assert seconds < 300, f"smoke pipeline took {seconds:.0f} s"


def test_eval_reads_the_learned_baselines_the_pipeline_trained(smoke_run):
    """`rkdsc eval --baselines` sweeps the exported baselines instead of training its own."""
    from rkdsc_core.data.datasets import load_dataset
    from rkdsc_core.eval.baselines import run_baselines

    out, _ = smoke_run
    b = Bundle(out / "bundle")
    test = load_dataset("fmnist_subset", "test", limit=64)
    learned = ["deepjscc-cnn", "single-stage", "teacher-over-channel"]
    curves, info = run_baselines(b, test, test, "awgn", [0.0, 30.0], 8, learned, None)
    for name in learned:
        assert info[name]["source"].startswith("bundle"), info[name]
        assert info[name]["epochs"] == 1 and info[name]["rate"] == 8
        assert [p["snr_db"] for p in curves[name]] == [0.0, 30.0]
        assert all(0.0 <= p["accuracy"] <= 1.0 for p in curves[name])
    # another rate has no trained copy: trained on the fly, and said so
    _, info16 = run_baselines(b, test, test, "awgn", [30.0], 16, ["deepjscc-cnn"], None)
    assert info16["deepjscc-cnn"]["source"].startswith("trained by rkdsc eval")


def test_killed_stage_resumes_from_its_checkpoint(smoke_run, tmp_path):
    out, _ = smoke_run
    cmd = smoke_train_cmd(out, "--stage", "stage2", "stage2.epochs=3")
    ckpt = out / "stage2" / "checkpoint.pt"
    ckpt.unlink(missing_ok=True)
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    import torch

    first = torch.load(ckpt, weights_only=True)
    done = first["epoch"]  # epochs done
    assert done < 3, "the stage finished before it could be killed"
    res = subprocess.run([*cmd, "--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming from {ckpt}" in res.stderr
    hist = json.loads((out / "stage2" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    assert hist[:done] == first["history"]  # the epochs run before the kill are kept as-is


def test_stage2_low_snr_phase_runs_after_the_main_epochs(smoke_run):
    out, _ = smoke_run
    args = ["stage2.epochs=1", "stage2.finetune_epochs=1", "stage2.finetune_snr_max_db=0"]
    res = _train(out, "--stage", "stage2", *args)
    assert res.returncode == 0, res.stderr[-3000:]
    hist = json.loads((out / "stage2" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [0, 1]
    import torch

    state = torch.load(out / "stage2" / "checkpoint.pt", weights_only=True)
    assert state["state"]["finetune"] is not None and state["state"]["finetune"]["T_max"] >= 1
    # the learned baselines get the same phase
    res = _train(out, "--stage", "baselines", "baselines.names=[deepjscc-cnn]", *args[1:])
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "baselines" / "deepjscc-cnn" / "metrics.json").read_text())
    assert [h["epoch"] for h in m["history"]] == [0, 1] and m["finetune_epochs"] == 1


def test_finetune_phase_resumes_its_learning_rate():
    import torch

    from rkdsc_core.config import Stage2Config
    from rkdsc_train.channel_fit import FinetunePhase

    s2 = Stage2Config(epochs=2, batch_size=10, finetune_epochs=2, finetune_lr=1e-3)
    w = torch.nn.Parameter(torch.zeros(3))

    def make():
        opt = torch.optim.AdamW([w], lr=5e-4)
        torch.optim.lr_scheduler.OneCycleLR(opt, 5e-4, total_steps=5)  # as stage 2's first phase
        return opt, FinetunePhase(s2, opt, steps_per_epoch=5)

    opt, ft = make()
    sched = ft.start()
    assert opt.param_groups[0]["lr"] == 1e-3 and ft.mix.snr_max_db == 10.0
    for _ in range(4):
        opt.step()
        sched.step()
    lr_after_4 = opt.param_groups[0]["lr"]
    assert 0 < lr_after_4 < 1e-3
    opt2, ft2 = make()
    opt2.load_state_dict(opt.state_dict())
    ft2.load_state_dict(ft.state_dict())
    ft2.start()
    assert opt2.param_groups[0]["lr"] == lr_after_4  # not restarted at finetune_lr


def test_baselines_stop_early_on_validation(smoke_run):
    """`baselines.early_stop_patience=1`: a baseline ends one epoch after its best one, or at its
    epoch cap; the best epoch's weights are the ones written."""
    out, _ = smoke_run
    args = ["baselines.names=[deepjscc-cnn]", "baselines.deepjscc_epochs=6"]
    res = _train(out, "--stage", "baselines", *args, "baselines.early_stop_patience=1")
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads((out / "baselines" / "deepjscc-cnn" / "metrics.json").read_text())
    epochs = [h["epoch"] for h in m["history"]]
    assert m["early_stop_patience"] == 1 and epochs == list(range(len(epochs)))
    scores = [sum(h["val"].values()) / len(h["val"]) for h in m["history"]]
    assert m["best"]["epoch"] == scores.index(max(scores))
    if m["stopped_at"] is None:
        assert len(epochs) == 6
    else:
        assert m["stopped_at"] == epochs[-1] == m["best"]["epoch"] + 1 and len(epochs) < 6
