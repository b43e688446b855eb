"""Issue 20 through GNU Radio: `rkdsc tx` / `rkdsc rx` take `--data-root`, so an ImageFolder
bundle is sent from, and scored against, the user's tree; without it the error is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.gnuradio

CLASSES = ("ant", "bee", "cat", "dog")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    from rkdsc_core.testing import make_imagefolder_tree

    return make_imagefolder_tree(tmp_path_factory.mktemp("imagefolder"), CLASSES)


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory) -> str:
    from rkdsc_core.testing import imagefolder_spec, make_tiny_bundle

    path = tmp_path_factory.mktemp("bundle") / "rgb"
    return str(make_tiny_bundle(path, dataset=imagefolder_spec(CLASSES)))


def _rkdsc(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "rkdsc.cli", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


def test_tx_rx_send_and_score_an_imagefolder_tree(tree, rgb_bundle, tmp_path):
    """`rkdsc tx` sends the first 8 test images of the tree (6 per class, sorted by class), `rkdsc
    rx` replays them and labels each decision from the same tree: 6 ants then 2 bees."""
    rec, dec = tmp_path / "rec", tmp_path / "decisions.jsonl"
    common = ("--mode", "file", "--bundle", rgb_bundle, "--data-root", str(tree), "--rate", "8")
    proc = _rkdsc("tx", *common, "--record", str(rec), "--n", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["images_sent"] == 8
    proc = _rkdsc("rx", *common, "--input", str(rec), "--decisions", str(dec))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["decisions"] == 8
    rows = [json.loads(line) for line in dec.read_text().splitlines()]
    rows.sort(key=lambda r: r["index"])
    assert [r["index"] for r in rows] == list(range(8))
    assert [r["label"] for r in rows] == [0] * 6 + [1] * 2


def test_tx_without_data_root_is_one_line(rgb_bundle, tmp_path):
    """An ImageFolder bundle has no default location: the user is told so, in one line."""
    proc = _rkdsc("tx", "--mode", "file", "--bundle", rgb_bundle, "--record", str(tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("rkdsc: error:") and "root" in line
