"""Data-parallel training under torchrun (gloo, CPU): the helpers, every smoke stage with 2 ranks
against one process with the same global batch, and a killed rank (fails fast, then --resume).

Tolerance of 2 ranks vs 1 process (same global batches, same seed): final losses within 8 %
(relative) and accuracies within 0.10 (absolute; 64–256 images, near-chance models after one smoke
epoch). They cannot agree bit for bit: BatchNorm normalises each rank's half batch (SyncBatchNorm
has no CPU kernel), and stage 2 and the baselines draw channel realisations per rank. Measured on
the smoke config: losses differ by ≤ 3.3 %, accuracies by ≤ 0.07; with the class-balanced subsets
and stratified validation of issue 20 the single-stage baseline (a student with BatchNorm trained
through the channel) differed by 6.6 %, the other losses by ≤ 2.4 %, accuracies by ≤ 0.05.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from core_helpers import REPO, smoke_train_cmd

from rkdsc_core import distributed
from rkdsc_core.runtime import Bundle

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
LOSS_RTOL, ACC_ATOL = 0.08, 0.10


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def _train_cmd(out: Path, *args: str, ranks: int = 1) -> list[str]:
    launcher = (*TORCHRUN, str(ranks)) if ranks > 1 else (sys.executable,)
    return smoke_train_cmd(out, *args, launcher=launcher)


def test_parts_cover_every_batch_and_one_process_is_untouched():
    for n in (1, 5, 64, 461):
        for world in (1, 2, 3):
            bounds = [distributed.part_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
            # loss_scale makes DDP's average of the scaled part means the global mean
            v = np.random.default_rng(n).normal(size=n)
            scaled = [world * (hi - lo) / n * v[lo:hi].mean() for lo, hi in bounds if hi > lo]
            assert sum(scaled) / world == pytest.approx(v.mean())
    # without torchrun every helper is the identity
    assert not distributed.is_active() and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.part(list(range(7))) == list(range(7))
    assert distributed.loss_scale(7, 7) == 1.0
    assert distributed.all_reduce_sum({"a": 2.0}) == {"a": 2.0}
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap(module) is module and distributed.unwrap(module) is module
    g = torch.Generator().manual_seed(3)
    assert distributed.step_generator(g, 0, 5) is g


_GRADIENT_SCRIPT = r"""
import json, os, sys
import torch
from rkdsc_core import distributed

assert distributed.init("cpu") and distributed.world_size() == 2
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
x, y = torch.randn(5, 4), torch.randn(5, 3)  # the same global batch of 5 on both ranks
ref = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
ref.load_state_dict(net.state_dict())
ref[1].eval(), net[1].eval()  # eval-mode BN: the gradient is then exactly the global one
torch.nn.functional.mse_loss(ref(x), y).backward()
ddp = distributed.wrap(net)
part_x, part_y = distributed.part(x), distributed.part(y)  # 3 / 2 samples: uneven parts
loss = torch.nn.functional.mse_loss(ddp(part_x), part_y)
(loss * distributed.loss_scale(len(part_x), len(x))).backward()
pairs = zip(net.parameters(), ref.parameters())
grad_err = max(float((a.grad - b.grad).abs().max()) for a, b in pairs)
net[1].running_mean.fill_(float(distributed.rank()))  # 0 and 1 -> 0.5 on both
distributed.sync_buffers_(net)
sums = distributed.all_reduce_sum({"n": len(part_x)})
out = {"grad_err": grad_err, "mean": net[1].running_mean.tolist(), "n": sums["n"]}

# the feature store, built sharded by both ranks (the test rebuilds it in one process)
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.feature_store import FeatureStore
from rkdsc_core.data.transforms import Normalisation
from rkdsc_core.models.teacher import create_teacher, save_teacher

norm = Normalisation.for_dataset("fmnist_subset")
data = load_dataset("fmnist_subset", "train", limit=45)
teacher = create_teacher("test_efficientnet", 10, norm, img_size=32, embed_dim=16).eval()
if distributed.is_main():
    save_teacher(teacher, os.path.join(sys.argv[1], "teacher.safetensors"))
entry = FeatureStore(os.path.join(sys.argv[1], "store")).get_or_build(
    teacher, "fmnist_subset", "train", data.images, data.labels, norm, views=3, batch_size=10
)
out["entry"] = str(entry.path)
with open(os.path.join(sys.argv[1], f"rank{distributed.rank()}.json"), "w") as f:
    json.dump(out, f)
distributed.shutdown()
"""


def test_two_gloo_ranks_give_the_global_batch_gradient_and_one_feature_store(tmp_path):
    script = tmp_path / "grad.py"
    script.write_text(_GRADIENT_SCRIPT)
    res = subprocess.run(
        [*TORCHRUN, "2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    outs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for out in outs:
        assert out["grad_err"] < 1e-6, out
        assert out["mean"] == [0.5, 0.5, 0.5] and out["n"] == 5
    # both ranks read the one entry they built; it equals a one-process build
    from rkdsc_core.data.datasets import load_dataset
    from rkdsc_core.data.feature_store import FeatureStore
    from rkdsc_core.data.transforms import Normalisation
    from rkdsc_core.models.teacher import load_teacher

    assert outs[0]["entry"] == outs[1]["entry"]
    shared = Path(outs[0]["entry"])
    assert not list(shared.parent.glob("*.tmp-*")), "a temporary build folder was left behind"
    teacher = load_teacher(tmp_path / "teacher.safetensors")
    data = load_dataset("fmnist_subset", "train", limit=45)
    norm = Normalisation.for_dataset("fmnist_subset")
    one = FeatureStore(tmp_path / "one").get_or_build(
        teacher, "fmnist_subset", "train", data.images, data.labels, norm, views=3, batch_size=10
    )
    assert one.path.name == shared.name  # the same key
    two = FeatureStore(tmp_path / "store").lookup(one.key)
    np.testing.assert_allclose(two.embeddings, one.embeddings, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two.logits, one.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(two.views, one.views)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The whole smoke pipeline as one process and as 2 gloo ranks, side by side."""
    root = tmp_path_factory.mktemp("ddp")
    one, two = root / "one", root / "two"
    t0 = time.time()
    procs = {
        out: subprocess.Popen(
            _train_cmd(out, ranks=ranks),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out, ranks in ((one, 1), (two, 2))
    }
    for out, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{out.name}: {err[-4000:]}"
    return one, two, time.time() - t0


def _metrics(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "metrics.json").read_text())


def _final(run: Path) -> dict[str, tuple[str, float]]:
    """(kind, value) of every stage's final loss and accuracy."""
    t, s, s1, s2 = (_metrics(run, st) for st in ("teacher", "search", "stage1", "stage2"))
    ex = _metrics(run, "export")
    out = {
        "teacher.train_loss": ("loss", t["history"][-1]["train_loss"]),
        "teacher.test_accuracy": ("acc", t["test_accuracy"]),
        "search.w_loss": ("loss", s["history"][-1]["w_loss"]),
        "search.a_loss": ("loss", s["history"][-1]["a_loss"]),
        "search.eval_accuracy": ("acc", s["history"][-1]["eval_accuracy"]),
        "stage1.loss": ("loss", s1["history"][-1]["loss"]),
        "stage1.test_accuracy": ("acc", s1["test_accuracy"]),
        "stage2.loss": ("loss", s2["history"][-1]["loss"]),
        "stage2.val_accuracy": ("acc", float(np.mean(list(s2["history"][-1]["val"].values())))),
        "export.clean_accuracy": ("acc", ex["clean_accuracy"]),
        "export.teacher_accuracy": ("acc", ex["teacher_accuracy"]),
    }
    for name in _metrics(run, "baselines")["baselines"]:
        last = _metrics(run, f"baselines/{name}")["history"][-1]
        out[f"baselines.{name}.loss"] = ("loss", last["loss"])
        out[f"baselines.{name}.val"] = ("acc", float(np.mean(list(last["val"].values()))))
    return out


def test_two_ranks_match_one_process_with_the_same_global_batch(runs):
    one, two, seconds = runs
    a, b = _final(one), _final(two)
    assert a.keys() == b.keys() and len(a) >= 14
    off = {}
    for key, (kind, va) in a.items():
        vb = b[key][1]
        ok = abs(vb - va) <= (LOSS_RTOL * abs(va) if kind == "loss" else ACC_ATOL)
        if not ok:
            off[key] = (va, vb)
    assert not off, f"2 ranks vs 1 process beyond tolerance: {off}"
    # the same training data and steps: same sample counts and number of epochs
    for stage in ("teacher", "search", "stage1", "stage2"):
        assert len(_metrics(one, stage)["history"]) == len(_metrics(two, stage)["history"])
    assert _metrics(two, "stage2")["train_images"] == _metrics(one, "stage2")["train_images"]
    assert seconds < 400, f"1- and 2-rank smoke pipelines took {seconds:.0f} s"


def test_rank_zero_writes_a_complete_loadable_bundle(runs):
    _, two, _ = runs
    b = Bundle(two / "bundle")
    assert {"teacher", "student", "cat", "head"} <= set(b.manifest["files"])
    assert 0 <= b.manifest["metrics"]["clean_accuracy"] <= 1
    for stage in ("teacher", "search", "stage1", "stage2", "baselines", "export"):
        assert (two / stage / "config.yaml").exists(), stage
    assert not list(two.rglob("*.tmp")), "a half-written file was left behind"


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_fast_and_resume_continues_on_one_process(runs, tmp_path):
    _, two, _ = runs
    out = tmp_path / "run"
    shutil.copytree(two, out, ignore=shutil.ignore_patterns("stage2", "export", "bundle"))
    epochs = 20
    args = ["--stage", "stage2", f"stage2.epochs={epochs}"]
    ckpt = out / "stage2" / "checkpoint.pt"
    proc = subprocess.Popen(
        _train_cmd(out, *args, ranks=2),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert ckpt.exists(), "no checkpoint was written"
        victims = [p for p in _descendants(proc.pid) if _rank_of(p) == 1]
        assert victims, "rank 1's process not found"
        os.kill(victims[0], signal.SIGKILL)
        t_kill = time.time()
        _, err = proc.communicate(timeout=120)
        waited = time.time() - t_kill
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert waited < 60, f"the run took {waited:.0f} s to fail after a rank was killed"
    # torchrun's summary names the killed rank and its signal
    assert "Signal 9 (SIGKILL)" in err and re.search(r"rank\s*:\s*1\b", err), err[-3000:]
    first = torch.load(ckpt, weights_only=True)
    done = first["epoch"]  # epochs done
    assert done < epochs, "the stage finished before the kill"

    # resume from the 2-rank checkpoint with a different world size (one process)
    res = subprocess.run(
        [*_train_cmd(out, *args), "--resume"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming from {ckpt}" in res.stderr
    hist = _metrics(out, "stage2")["history"]
    assert [h["epoch"] for h in hist] == list(range(epochs))
    assert hist[:done] == first["history"]  # the epochs run before the kill are kept
    assert (out / "stage2" / "cat.safetensors").exists()
