"""Issue 20 on a tiny class-sorted ImageFolder tree (built here, PNG via PIL): validation splits
and every limit span all classes, training loads the configured image size, and data that do not
fit a bundle's dataset spec fail in one line. Each test would have caught a bullet of the issue."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from rkdsc_core.config import DataConfig
from rkdsc_core.data.datasets import load_configured, load_dataset
from rkdsc_core.data.spec import DatasetSpec
from rkdsc_core.data.subsets import balanced_subset, indices_sha256, validation_split
from rkdsc_core.errors import RkdscError

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("ant", "bee", "cat", "dog")
PER_CLASS = {"train": 10, "test": 6}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """DIR/{train,test}/<class>/NNN.png, 20x20 RGB: files sort by class, as every export does."""
    from rkdsc_core.testing import make_imagefolder_tree

    return make_imagefolder_tree(tmp_path_factory.mktemp("imagefolder"), CLASSES, PER_CLASS)


def _spec(size: int = 16, classes=CLASSES) -> dict:
    from rkdsc_core.testing import imagefolder_spec

    return imagefolder_spec(classes, size)


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory) -> str:
    from rkdsc_core.testing import make_tiny_bundle

    path = tmp_path_factory.mktemp("bundle") / "rgb"
    return str(make_tiny_bundle(path, dataset=_spec(), with_teacher=True))


# --- "the validation split is the last 10%: one class" ------------------------------------------


def test_validation_split_holds_out_every_class(tree):
    data = load_dataset("imagefolder", "train", str(tree), image_size=16)
    assert list(data.labels) == sorted(data.labels)  # the tree is class-sorted
    fit, val = validation_split(data.labels, 0.2, seed=0)
    assert len(val) == 8 and len(fit) == 32 and not set(fit) & set(val)
    assert np.bincount(data.labels[val]).tolist() == [2, 2, 2, 2]
    assert np.array_equal(val, validation_split(data.labels, 0.2, seed=0)[1])
    assert not np.array_equal(val, validation_split(data.labels, 0.2, seed=1)[1])
    _, small = validation_split(data.labels, 0.2, seed=0, limit=4)  # stage 2's val_limit
    assert set(small) <= set(val) and np.bincount(data.labels[small]).tolist() == [1, 1, 1, 1]


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    _, val = validation_split(labels, 0.1, seed=3)
    assert np.bincount(labels[val]).tolist() == [60, 30, 10]


# --- "train_limit, test_limit and --n take the first N images" ----------------------------------


def test_every_limit_is_a_class_balanced_subset(tree):
    full = load_dataset("imagefolder", "test", str(tree), image_size=16)
    data = load_dataset("imagefolder", "test", str(tree), image_size=16, limit=8)
    assert np.bincount(data.labels).tolist() == [2, 2, 2, 2]
    assert np.array_equal(data.images, full.images[data.index])  # `index`: in the whole split
    assert np.array_equal(data.index, balanced_subset(full.labels, 8))
    cfg = DataConfig(name="imagefolder", root=str(tree), image_size=16, train_limit=12)
    train = load_configured(cfg, "train")
    assert len(train) == 12 and np.bincount(train.labels).tolist() == [3, 3, 3, 3]


def test_balanced_subset_with_a_small_class():
    labels = np.repeat([0, 1, 2], [50, 2, 50])
    idx = balanced_subset(labels, 30, seed=0)
    assert np.bincount(labels[idx]).tolist() == [14, 2, 14]
    assert len(set(idx)) == 30 and list(idx) == sorted(idx)
    assert indices_sha256(idx) == indices_sha256(balanced_subset(labels, 30, seed=0))


def test_eval_n_spans_every_class_and_records_the_images(tree, rgb_bundle, tmp_path, capsys):
    from rkdsc import cli

    out = tmp_path / "a.json"
    args = ["eval", "--bundle", rgb_bundle, "--data-root", str(tree), "--channel", "awgn"]
    assert cli.main([*args, "--snr=0", "--rate", "8", "--n", "8", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    images = rep["images"]
    assert (rep["n"], images["n"], images["of"]) == (8, 8, 24)
    assert images["class_counts"] == {"0": 2, "1": 2, "2": 2, "3": 2}
    full = load_dataset("imagefolder", "test", str(tree), image_size=16)
    assert images["indices_sha256"] == indices_sha256(balanced_subset(full.labels, 8))


# --- "stage 2, baselines and export load 64-pixel images" ---------------------------------------


def test_training_stages_load_images_only_through_the_config(tree):
    cfg = DataConfig(name="imagefolder", root=str(tree), image_size=16, test_limit=4)
    assert load_configured(cfg, "test").images.shape == (4, 16, 16, 3)
    stages = sorted((REPO / "rkdsc_train" / "stages").glob("*.py"))
    assert len(stages) >= 7, stages
    for path in stages:
        called = {
            node.func.id
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "load_dataset" not in called, f"{path.name} bypasses data.image_size / limits"


# --- "eval, loopback, ... have no way to learn the bundle's image size" -------------------------


def test_bundle_spec_loads_its_size_and_rejects_other_data_in_one_line(tree, rgb_bundle):
    from rkdsc_core.runtime import load_bundle

    spec = load_bundle(rgb_bundle).dataset
    assert spec.load("test", str(tree), 4).images.shape == (4, 16, 16, 3)
    wrong = DatasetSpec.from_manifest(_spec(classes=("ant", "bee", "cat", "eel")))
    with pytest.raises(RkdscError, match="classes differ") as exc:
        wrong.load("test", str(tree))
    assert "\n" not in str(exc.value)
    big = DatasetSpec.from_manifest({"name": "fmnist_subset", "image_size": [32, 32]})
    with pytest.raises(RkdscError, match=r"28x28x1.*32x32x1.*image size differ"):
        big.load("test")


def test_eval_refuses_a_mismatched_image_size_in_one_line(tmp_path, capsys):
    import yaml

    from rkdsc import cli
    from rkdsc_core.testing import make_tiny_bundle

    spec = {**_spec(32), "name": "fmnist_subset", "channels": 1, "mean": [0.3], "std": [0.3]}
    spec["classes"] = list(DatasetSpec.from_manifest({"name": "fmnist"}).classes)
    bundle = make_tiny_bundle(tmp_path / "b", dataset=spec)
    assert yaml.safe_load((bundle / "manifest.yaml").read_text())["dataset"]["image_size"] == [
        32,
        32,
    ]
    assert cli.main(["eval", "--bundle", str(bundle), "--snr=0", "--n", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "image size differ" in err


def test_old_manifests_default_their_spec_from_the_dataset_name():
    from rkdsc_core.bundle import read_manifest

    shipped = DatasetSpec.from_manifest(read_manifest("default")["dataset"])
    assert shipped == DatasetSpec.from_manifest({"name": "fmnist"})
    assert shipped.shape == (28, 28, 1) and len(shipped.classes) == 10
    with pytest.raises(RkdscError, match="no image_size"):
        DatasetSpec.from_manifest({"name": "imagefolder", "classes": ["a"]})
