"""The registry shape (rkdsc_core.registry) and the channel registry every channel list reads."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rkdsc_core.channels import CHANNELS, ChannelMix, list_channels, make_channel
from rkdsc_core.channels.fading import NoFading
from rkdsc_core.errors import RkdscError
from rkdsc_core.registry import Registry, UnknownNameError

REPO = Path(__file__).resolve().parents[2]


def test_registry_lookup_order_and_errors():
    reg = Registry("widget", {"b": int})

    @reg.register("a")
    def make_a():
        return "a"

    assert reg.names() == ("b", "a") and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("a") is make_a and reg["b"] is int and reg.create("b", "7") == 7
    assert "a" in reg and "c" not in reg and dict(reg) == {"b": int, "a": make_a}
    with pytest.raises(UnknownNameError) as err:
        reg.get("c")
    assert str(err.value) == "unknown widget 'c' (choose from b, a)"
    assert isinstance(err.value, RkdscError) and isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", str)


def test_every_registered_channel_runs_and_a_typo_lists_them():
    x = torch.ones(2, 8, dtype=torch.complex64)
    g = torch.Generator().manual_seed(0)
    assert list_channels() == ("awgn", "rayleigh", "rayleigh_fast", "rician")
    for name in list_channels():
        out = make_channel(name)(x, snr_db=10.0, generator=g)
        assert out.symbols.shape == x.shape and make_channel(name).name == name
    for bad in (lambda: make_channel("rayleygh"), lambda: ChannelMix(["awgn", "rayleygh"])):
        with pytest.raises(UnknownNameError, match="choose from awgn, rayleigh, rayleigh_fast"):
            bad()


def test_cli_channel_choices_are_the_registry(monkeypatch, capsys):
    """A channel registered at run time is accepted by the CLI without touching cli.py."""
    from rkdsc.cli import build_parser

    parser = build_parser()
    monkeypatch.setitem(CHANNELS._entries, "test_only", NoFading)
    for cmd in ("eval", "loopback"):
        args = parser.parse_args([cmd, "--channel", "test_only"])
        assert "test_only" in (args.channel if cmd == "loopback" else args.channel[0])
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([cmd, "--channel", "nope"])
        assert exc.value.code == 2
        assert "'test_only'" in capsys.readouterr().err


@pytest.mark.parametrize("block", ["symbol_channel", "keyed_channel"])
def test_grc_channel_enums_are_the_registry(block):
    spec = yaml.safe_load((REPO / f"gr-rkdsc/grc/rkdsc_{block}.block.yml").read_text())
    param = next(p for p in spec["parameters"] if p["id"] == "channel")
    assert tuple(param["options"]) == list_channels()
    assert param["default"] in list_channels()


def test_dataset_registry_is_the_door_of_load_dataset(monkeypatch):
    from rkdsc_core.data import datasets as ds

    assert ds.list_datasets() == ("fmnist", "fmnist_subset", "cifar10", "cifar100", "imagefolder")
    assert len(ds.load_dataset("fmnist_subset", "test", limit=3)) == 3
    seen = {}
    four = ds.ImageArrays("t", "train", np.zeros((4, 2, 2, 1), np.uint8), np.zeros(4), ("a",))
    monkeypatch.setitem(ds.DATASETS._entries, "test_only", lambda **kw: seen.update(kw) or four)
    assert len(ds.load_dataset("test_only", "train", root="r", image_size=8, limit=2)) == 2
    assert seen == {"split": "train", "root": "r", "download": False, "image_size": 8}
    with pytest.raises(RkdscError, match="unknown dataset 'mnist' \\(choose from fmnist, "):
        ds.load_dataset("mnist", "train")


def test_every_dataset_has_its_normalisation():
    """A dataset added to the registry without its statistics fails here, not in training."""
    from rkdsc_core.data.datasets import list_datasets
    from rkdsc_core.data.transforms import NORMALISATION

    assert tuple(NORMALISATION) == list_datasets()


def test_unknown_stage_lists_the_stages(tmp_path):
    from rkdsc_train.pipeline import STAGES, run_pipeline

    with pytest.raises(UnknownNameError, match="unknown stage 'stage3' \\(choose from teacher, "):
        run_pipeline(REPO / "rkdsc_train/configs/smoke.yaml", [f"out_dir={tmp_path}"], ["stage3"])
    assert STAGES.names()[0] == "teacher" and STAGES.names()[-1] == "export"


def test_cli_parser_builds_without_torch():
    """The --channel choices are read when used, so `rkdsc doctor` can report a broken torch."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from rkdsc.cli import build_parser\n"
        "print(build_parser().parse_args(['doctor']).command)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "doctor", out.stderr


def test_baseline_registry_runs_what_is_registered(monkeypatch):
    """`run_baselines` dispatches through BASELINES: a runner registered at run time is run with
    the shared BaselineRun, and the CLI's lists (`all`, the digital ones) are the registry's."""
    from rkdsc_core.eval import baselines as bl

    assert bl.ALL == bl.BASELINES.names() and bl.ALL[0] == "no-cat"
    assert bl.DIGITAL == tuple(n for n in bl.ALL if "digital" in n) and len(bl.DIGITAL) == 4
    seen = []
    fake = bl.Baseline(lambda r: seen.append(r) or ([{"snr_db": 1.0, "accuracy": 0.5}], {}))
    monkeypatch.setitem(bl.BASELINES._entries, "test-only", fake)
    curves, _ = bl.run_baselines("B", "D", "T", "awgn", [1.0], 8, ["test-only"], None, seed=3)
    assert curves["test-only"][0]["accuracy"] == 0.5
    assert (seen[0].bundle, seen[0].rate, seen[0].seed, seen[0].code_factory) == ("B", 8, 3, None)
    with pytest.raises(UnknownNameError, match="unknown baseline 'nope' \\(choose from no-cat, "):
        bl.run_baselines("B", "D", "T", "awgn", [1.0], 8, ["nope"], None)
