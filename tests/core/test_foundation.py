"""Foundation: config deltas/overrides, dataset loading and errors, layering, doctor, CLI errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rkdsc_core.config import Config, load_config, parse_overrides, save_config
from rkdsc_core.data.datasets import FMNIST_SYSTEM_DIR, load_dataset
from rkdsc_core.data.transforms import Normalisation, random_crop_flip, to_tensor
from rkdsc_core.errors import ConfigError, RkdscError

REPO = Path(__file__).resolve().parents[2]
SMOKE_CFG = str(REPO / "rkdsc_train" / "configs" / "smoke.yaml")
PY = sys.executable
RKDSC = [PY, "-m", "rkdsc.cli"]


# --- configuration -------------------------------------------------------------------------


def test_yaml_delta_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 3\nstage2:\n  rates: [4, 8]\n  channel:\n    snr_min_db: -5\n")
    cfg = load_config(f, ["stage1.lr=0.01", "data.train_limit=100", "stage2.channel.rician_k=2"])
    assert cfg.seed == 3 and cfg.stage2.rates == [4, 8]
    assert cfg.stage2.channel.snr_min_db == -5.0 and isinstance(
        cfg.stage2.channel.snr_min_db, float
    )
    assert cfg.stage1.lr == 0.01 and cfg.data.train_limit == 100
    assert cfg.stage2.channel.rician_k == 2.0
    assert cfg.stage1.epochs == Config().stage1.epochs  # untouched defaults stay


def test_unknown_key_names_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("stage1:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="'stage1.lrr'"):
        load_config(f)
    with pytest.raises(ConfigError, match="'data.nmae'"):
        load_config(None, ["data.nmae=cifar10"])


def test_bad_types_and_conflicts_raise():
    with pytest.raises(ConfigError, match="'stage1.epochs' expects int"):
        load_config(None, ["stage1.epochs=abc"])
    with pytest.raises(ConfigError, match="'seed' expects int"):
        load_config(None, ["seed=true"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_overrides(["seed=1", "seed=2"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["seed"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["stage2.rates=[4,16]", "data.root=/x"])
    path = save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(path) == cfg


def test_shipped_configs_resolve():
    for f in sorted((REPO / "rkdsc_train" / "configs").glob("*.yaml")):
        load_config(f)


# --- datasets ------------------------------------------------------------------------------


def test_subset_shapes_and_labels():
    tr = load_dataset("fmnist_subset", "train")
    te = load_dataset("fmnist_subset", "test", limit=100)
    assert tr.images.shape == (1000, 28, 28, 1) and tr.images.dtype == np.uint8
    assert len(te) == 100 and te.labels.dtype == np.int64
    assert set(np.unique(tr.labels)) == set(range(10)) and len(tr.classes) == 10


@pytest.mark.skipif(not FMNIST_SYSTEM_DIR.exists(), reason="dataset-fashion-mnist not installed")
def test_full_fmnist_and_its_normalisation(tmp_path, monkeypatch):
    monkeypatch.setenv("RKDSC_CACHE", str(tmp_path))
    tr = load_dataset("fmnist", "train")
    te = load_dataset("fmnist", "test")
    assert tr.images.shape == (60000, 28, 28, 1) and len(te) == 10000
    # the subset is the head of the full split
    np.testing.assert_array_equal(load_dataset("fmnist_subset", "test").images, te.images[:500])
    x = tr.images.astype(np.float64) / 255
    norm = Normalisation.for_dataset("fmnist")
    assert abs(x.mean() - norm.mean[0]) < 1e-3 and abs(x.std() - norm.std[0]) < 1e-3


def test_missing_dataset_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RKDSC_FMNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(RkdscError) as err:
        load_dataset("fmnist", "train")
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg
    with pytest.raises(RkdscError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "train", root=str(tmp_path))
    with pytest.raises(RkdscError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", "train")


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 10), (i * 50, 0, 0)).save(tmp_path / split / cls / f"{i}.png")
    arr = load_dataset("imagefolder", "train", root=str(tmp_path), image_size=16)
    assert arr.images.shape == (4, 16, 16, 3) and arr.classes == ("cat", "dog")


def test_to_tensor_and_augment():
    imgs = load_dataset("fmnist_subset", "test", limit=8).images
    x = to_tensor(imgs, Normalisation.for_dataset("fmnist"))
    assert x.shape == (8, 1, 28, 28) and x.dtype.is_floating_point
    import torch

    y = random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(imgs.astype(np.float32), Normalisation.for_dataset("fmnist"))


# --- layering ------------------------------------------------------------------------------


# The import graph (transitive, lazy imports too) is checked in test_layers.py.


BLOCK_GR = "import sys; sys.modules['gnuradio'] = None; sys.modules['pmt'] = None\n"


def test_core_imports_without_gnuradio():
    code = BLOCK_GR + (
        "import pkgutil, importlib, rkdsc_core\n"
        "for m in pkgutil.walk_packages(rkdsc_core.__path__, 'rkdsc_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import rkdsc_gr.paths; print('ok')\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_doctor_reports_missing_gnuradio_in_one_line():
    code = BLOCK_GR + "from rkdsc.cli import main; sys.exit(main(['doctor', '--json']))"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    rep = json.loads(out.stdout)
    gr = next(c for c in rep["checks"] if c["name"] == "gnuradio")
    assert gr["status"] == "fail" and "apt-get install gnuradio" in gr["fix"]
    assert "\n" not in gr["detail"] + gr["fix"]


# --- command line --------------------------------------------------------------------------


def test_cli_unknown_config_key_is_one_line(tmp_path):
    out = subprocess.run(
        [*RKDSC, "train", "--config", SMOKE_CFG, "stage1.nope=1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "'stage1.nope'" in out.stderr


def test_cli_missing_config_file(tmp_path):
    out = subprocess.run(
        [*RKDSC, "train", "--config", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_configs_named_by_their_old_folder_still_load(monkeypatch):
    """Commands recorded before the move (bundle manifests, issue texts) say training/configs/."""
    from rkdsc_core.errors import ConfigError

    monkeypatch.chdir(REPO)
    old = load_config("training/configs/smoke.yaml", ["teacher.epochs=2"])
    assert old == load_config("rkdsc_train/configs/smoke.yaml", ["teacher.epochs=2"])
    with pytest.raises(ConfigError, match="'training/configs/nope.yaml' does not exist"):
        load_config("training/configs/nope.yaml")


def test_grc_path_points_at_the_yaml_folder():
    out = subprocess.run([*RKDSC, "grc-path"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0
    assert Path(out.stdout.strip()) == REPO / "gr-rkdsc" / "grc"


@pytest.mark.gnuradio
def test_doctor_passes_here():
    out = subprocess.run(
        [*RKDSC, "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    rep = json.loads(out.stdout)
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["gnuradio"]["detail"].startswith("3.10")
    assert checks["numpy"]["status"] == "ok"
    if FMNIST_SYSTEM_DIR.exists():
        assert out.returncode == 0, out.stdout
