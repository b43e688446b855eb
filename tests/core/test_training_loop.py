"""The one training loop (`rkdsc_core.training_loop.fit`): a run killed after any epoch and
resumed ends with the weights, history and best epoch of an uninterrupted run; the best epoch's
weights come back; early stopping stops (or jumps to a later phase) after `patience` epochs."""

import io

import pytest
import torch

from rkdsc_core.errors import RkdscError
from rkdsc_core.training_loop import (
    EarlyStopping,
    GeneratorState,
    fit,
    global_batches,
    train_epoch,
)


class MemoryCheckpoints:
    """Checkpoints in memory, serialised as `torch.save` would write them."""

    def __init__(self) -> None:
        self.blob: bytes | None = None
        self.resume = False
        self.saves = 0

    def save_checkpoint(self, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        self.blob, self.saves = buf.getvalue(), self.saves + 1

    def load_checkpoint(self):
        if not self.resume or self.blob is None:
            return None
        return torch.load(io.BytesIO(self.blob), weights_only=True)


class Killed(Exception):
    pass


def _trainer(epochs: int, kill_after: int | None = None, patience: int = 0):
    """A tiny regression trained with AdamW + one-cycle + a generator drawing the batch order:
    every piece of state a stage checkpoints. Returns (model, run)."""
    torch.manual_seed(0)
    x = torch.randn(96, 5)
    y = x @ torch.randn(5, 1) + 0.1 * torch.randn(96, 1)
    model = torch.nn.Linear(5, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=epochs * 6)
    gen = torch.Generator().manual_seed(1)

    def run_epoch(epoch: int) -> dict:
        if kill_after is not None and epoch == kill_after:
            raise Killed
        order = torch.randperm(80, generator=gen)

        def step(idx):
            return {"loss": torch.nn.functional.mse_loss(model(x[idx]), y[idx])}

        row = train_epoch(global_batches(order, 16), step, opt, sched, model.parameters(), "t")
        with torch.no_grad():  # validation: held-out rows, noisy enough to go up and down
            row["val"] = -float(torch.nn.functional.mse_loss(model(x[80:]), y[80:]))
        return row

    def run(ckpt, **kw):
        return fit(
            "toy",
            epochs,
            run_epoch,
            {"model": model},
            state={"opt": opt, "sched": sched, "gen": GeneratorState(gen)},
            score=lambda r: r["val"],
            checkpoints=ckpt,
            early_stop=EarlyStopping(patience),
            **kw,
        )

    return model, run


def _strip(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.mark.parametrize("kill_after", [1, 3])
def test_a_killed_and_resumed_run_ends_as_an_uninterrupted_one(kill_after):
    model, run = _trainer(5)
    whole = run(MemoryCheckpoints())
    ref = {k: v.clone() for k, v in model.state_dict().items()}

    ckpt = MemoryCheckpoints()
    _, run = _trainer(5, kill_after=kill_after)
    with pytest.raises(Killed):
        run(ckpt)
    assert ckpt.saves == kill_after
    model, run = _trainer(5)  # a fresh process: everything rebuilt, then resumed
    ckpt.resume = True
    resumed = run(ckpt)
    assert _strip(resumed.history) == _strip(whole.history)
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3, 4]
    assert resumed.best == whole.best
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def _scripted(scores, epochs, patience, until=None, ties_to_later=False, ckpt=None):
    model = torch.nn.Linear(1, 1, bias=False)

    def run_epoch(epoch):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # the weights say which epoch wrote them
        return {"val": scores[epoch]}

    res = fit(
        "scripted",
        epochs,
        run_epoch,
        {"m": model},
        score=lambda r: r["val"],
        checkpoints=ckpt,
        early_stop=EarlyStopping(patience, until),
        ties_to_later=ties_to_later,
    )
    return res, float(model.weight.detach())


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    scores = [0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9, 0.9]
    res, w = _scripted(scores, 8, patience=3)
    assert [r["epoch"] for r in res.history] == [0, 1, 2, 3, 4]  # 0.9 at epoch 5 never seen
    assert res.stopped_at == 4 and res.best == {"epoch": 1, "score": 0.5} and w == 1.0
    res, w = _scripted(scores, 8, patience=0)  # off: every epoch runs
    assert len(res.history) == 8 and res.stopped_at is None and res.best["epoch"] == 5
    res, w = _scripted(scores, 8, patience=0, ties_to_later=True)
    assert res.best["epoch"] == 7 and w == 7.0


def test_early_stopping_jumps_to_the_later_phase_which_runs_in_full():
    scores = [0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.55]  # main phase: epochs 0-4; later phase: 5, 6
    res, w = _scripted(scores, 7, patience=2, until=5)
    assert [r["epoch"] for r in res.history] == [0, 1, 2, 5, 6]
    assert res.stopped_at == 2 and res.best["epoch"] == 5 and w == 5.0


def test_a_run_stopped_early_and_resumed_stays_stopped():
    ckpt = MemoryCheckpoints()
    scores = [0.5, 0.4, 0.3, 0.9]
    first, _ = _scripted(scores, 4, patience=2, ckpt=ckpt)
    ckpt.resume = True
    again, w = _scripted(scores, 4, patience=2, ckpt=ckpt)
    assert len(again.history) == len(first.history) == 3 and w == 0.0


def test_resume_refuses_a_checkpoint_of_another_layout_or_config():
    ckpt = MemoryCheckpoints()
    ckpt.save_checkpoint({"epoch": 1, "model": {}})  # the per-stage layout before fit
    ckpt.resume = True
    with pytest.raises(RkdscError, match="another version"):
        _scripted([0.1, 0.2], 2, 0, ckpt=ckpt)
    ckpt = MemoryCheckpoints()
    model = torch.nn.Linear(1, 1)
    fit("m", 1, lambda e: {}, {"m": model}, checkpoints=ckpt, meta={"spec": "a"})
    ckpt.resume = True
    with pytest.raises(RkdscError, match="different spec"):
        fit("m", 2, lambda e: {}, {"m": model}, checkpoints=ckpt, meta={"spec": "b"})
    with pytest.raises(RkdscError, match="patience"):
        EarlyStopping(-1)
    with pytest.raises(RkdscError, match="needs a validation score"):
        fit("m", 2, lambda e: {}, {"m": model}, early_stop=EarlyStopping(2))


def test_the_eval_side_trainer_stops_early_on_held_out_images(tmp_path):
    """`rkdsc eval`'s own learned-baseline trainer: `patience` holds out a tenth of the training
    images and stops when their accuracy at the validation points stops improving."""
    import numpy as np

    from rkdsc_core.data.datasets import ImageArrays
    from rkdsc_core.eval.baselines import BaselineRun
    from rkdsc_core.eval.learned_baselines import deepjscc_cnn
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle

    b = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, (80, 28, 28, 1), dtype=np.uint8)
    data = ImageArrays("t", "test", imgs, np.arange(80) % 10, b.classes)
    kw = {"steps": 2, "batch_size": 8, "epochs": 30, "patience": 1}
    run = BaselineRun(b, data, data, "awgn", [10.0], 8)
    _, info = deepjscc_cnn(run, **kw)
    assert info["val_images"] == 8 and info["train_images"] == 72
    assert 2 <= info["epochs"] < 30  # random labels: validation stops improving long before 30
    assert info["train_steps"] == 2 * info["epochs"] and info["best"]["epoch"] < info["epochs"]
    _, info = deepjscc_cnn(run, steps=2, batch_size=8)
    assert info["train_steps"] == 2 and "best" not in info  # the default: one budget, no split
