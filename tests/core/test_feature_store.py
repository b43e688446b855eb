"""Teacher-feature store: values equal the teacher's, memmapped hits, invalidation on every key
part, stored augmented views, and `rkdsc_train.targets` / stage "store" over a config."""

import json

import numpy as np
import pytest
import torch

from rkdsc_core.config import load_config
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.feature_store import FeatureStore, apply_view, view_params
from rkdsc_core.data.transforms import Normalisation, to_tensor
from rkdsc_core.errors import RkdscError
from rkdsc_core.models.teacher import create_teacher, save_teacher

NORM = Normalisation.for_dataset("fmnist_subset")
N = 48


@pytest.fixture(scope="module")
def data():
    return load_dataset("fmnist_subset", "train", limit=N)


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return create_teacher("test_efficientnet", 10, NORM, img_size=32, embed_dim=16).eval()


def _build(store, teacher, data, **kw):
    kw.setdefault("batch_size", 20)  # not a divisor of N: exercises the ragged last batch
    return store.get_or_build(teacher, data.name, "train", data.images, data.labels, NORM, **kw)


def test_values_equal_the_teacher_and_hits_are_memmapped(tmp_path, teacher, data, monkeypatch):
    store = FeatureStore(tmp_path)
    entry = _build(store, teacher, data, views=3, pad=2, seed=5)
    assert entry.embeddings.shape == (3, N, 16) and entry.logits.shape == (3, N, 10)
    x = to_tensor(data.images, NORM)
    with torch.no_grad():
        emb, logits = teacher(x)
        emb2, _ = teacher(apply_view(x, entry.views[2], 2))
    clean = entry.targets(0)
    assert clean.embeddings.dtype == np.float32 and len(clean) == N
    np.testing.assert_allclose(clean.embeddings, emb.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(clean.logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(entry.targets(2).embeddings, emb2.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(entry.targets(1).embeddings, clean.embeddings)

    def boom(*a, **k):
        raise AssertionError("a hit must not recompute")

    monkeypatch.setattr(FeatureStore, "build", boom)
    hit = _build(store, teacher, data, views=3, pad=2, seed=5)
    assert hit.path == entry.path
    assert isinstance(hit.embeddings, np.memmap) and not hit.embeddings.flags.writeable
    with pytest.raises(IndexError):
        hit.targets(3)


def test_every_key_part_invalidates(tmp_path, teacher, data):
    store = FeatureStore(tmp_path)
    base = _build(store, teacher, data).path
    other = load_dataset("fmnist_subset", "train", limit=N + 1)
    shifted = data.images.copy()
    shifted[0, 0, 0, 0] ^= 1
    with torch.no_grad():
        changed = create_teacher("test_efficientnet", 10, NORM, img_size=32, embed_dim=16)
        changed.load_state_dict(teacher.state_dict())
        changed.classifier.bias.add_(1e-3)
    keys = {
        "teacher weights": store.make_key(
            changed, data.name, "train", data.images, data.labels, NORM
        ),
        "images": store.make_key(teacher, data.name, "train", shifted, data.labels, NORM),
        "n": store.make_key(teacher, other.name, "train", other.images, other.labels, NORM),
        "split": store.make_key(teacher, data.name, "test", data.images, data.labels, NORM),
        "views": store.make_key(teacher, data.name, "train", data.images, data.labels, NORM, 2),
        "seed": store.make_key(
            teacher, data.name, "train", data.images, data.labels, NORM, 2, seed=1
        ),
        "norm": store.make_key(
            teacher, data.name, "train", data.images, data.labels, Normalisation((0.5,), (0.5,))
        ),
    }
    dirs = {store.entry_dir(k) for k in keys.values()}
    assert base not in dirs and len(dirs) == len(keys)
    assert all(store.lookup(k) is None for k in keys.values())
    rebuilt = _build(store, changed, data)
    assert rebuilt.path != base
    assert not np.allclose(rebuilt.logits[0], np.load(base / "logits.npy")[0])


def test_partial_or_mismatched_entries_are_not_served(tmp_path, teacher, data):
    store = FeatureStore(tmp_path)
    entry = _build(store, teacher, data)
    key = entry.key
    manifest = entry.path / "manifest.json"
    meta = json.loads(manifest.read_text())
    meta["key"]["n"] = 7
    manifest.write_text(json.dumps(meta))
    assert store.lookup(key) is None
    manifest.unlink()  # as after a build killed before its manifest
    assert store.lookup(key) is None
    again = _build(store, teacher, data)
    assert again.path == entry.path and store.lookup(key) is not None


def test_view_params_and_apply_view():
    p = view_params(1000, 3, pad=2, seed=0)
    assert p.dtype == np.int8 and p.shape == (3, 1000, 3)
    assert not p[0].any() and np.array_equal(p, view_params(1000, 3, pad=2, seed=0))
    assert set(np.unique(p[1:, :, :2])) == {-2, -1, 0, 1, 2} and set(np.unique(p[1:, :, 2])) == {
        0,
        1,
    }
    x = torch.arange(2 * 1 * 5 * 6, dtype=torch.float32).view(2, 1, 5, 6)
    assert torch.equal(apply_view(x, np.zeros((2, 3), np.int8), 2), x)
    out = apply_view(x, np.array([[1, -1, 0], [0, 0, 1]]), 2)
    assert torch.equal(out[0, 0, :4, 1:], x[0, 0, 1:, :5])  # pixel (i, j) = input (i+1, j-1)
    assert torch.equal(out[0, 0, 4], x[0, 0, 4, [0, 0, 1, 2, 3, 4]])  # edges replicated
    assert torch.equal(out[1], x[1].flip(-1))
    with pytest.raises(ValueError, match="exceeds pad"):
        apply_view(x, np.array([[3, 0, 0], [0, 0, 0]]), 2)


def _config(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        f"out_dir: {tmp_path / 'run'}\n"
        "data: {name: fmnist_subset, train_limit: 40, test_limit: 24}\n"
        f"store: {{root: {tmp_path / 'store'}, augmented_views: 1, batch_size: 16}}\n"
    )
    return cfg_file


def test_targets_and_store_stage_from_a_config(tmp_path, teacher):
    from rkdsc_train.pipeline import run_pipeline
    from rkdsc_train.targets import teacher_targets

    cfg_file = _config(tmp_path)
    cfg = load_config(cfg_file)
    with pytest.raises(RkdscError, match="no trained teacher"):
        teacher_targets(cfg, "train")
    save_teacher(teacher, tmp_path / "run" / "teacher" / "teacher.safetensors")
    out = run_pipeline(cfg_file, [], stages=["store"])["store"]
    assert out["train"] == {"views": 2, "n": 40, "dim": 16}
    assert out["test"] == {"views": 1, "n": 24, "dim": 16}
    tr = teacher_targets(cfg, "train")
    te = teacher_targets(cfg, "test")
    assert (len(tr), tr.dim, tr.num_classes, len(te)) == (40, 16, 10, 24)
    test_imgs = load_dataset("fmnist_subset", "test", limit=24).images
    with torch.no_grad():
        want = teacher.logits(to_tensor(test_imgs, NORM)).numpy()
    np.testing.assert_allclose(te.logits, want, rtol=1e-5, atol=1e-5)
