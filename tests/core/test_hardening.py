"""Issue 21: the decoder's SNR input clamped to the trained range, config ranges checked at load,
bundle manifests checked (component files confined to the bundle folder), output paths checked
before any work."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from rkdsc_core.bundle import MANIFEST, read_manifest
from rkdsc_core.config import load_config
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.errors import ConfigError, RkdscError
from rkdsc_core.outputs import output_problem
from rkdsc_core.runtime import Bundle
from rkdsc_core.testing import make_tiny_bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny")


# --- row 1: a clean link decodes as the top of the trained range -------------------------------


def test_decoder_snr_is_clamped_to_the_trained_range(tiny):
    b = Bundle(tiny)
    assert b.snr_range_db == (-10.0, 20.0)
    images = load_dataset("fmnist_subset", "test", limit=32).images
    sym = b.transmitter(8).encode(images)
    rx = b.receiver()
    top = rx.decode(sym, 20.0)
    for told in (20.5, 39.0, 45.0, 60.0, 300.0, float("inf")):
        np.testing.assert_array_equal(rx.decode(sym, told), top)
    np.testing.assert_array_equal(rx.decode(sym, -40.0), rx.decode(sym, -10.0))
    assert not np.array_equal(rx.decode(sym, 10.0), top)  # inside the range: the SNR counts
    # with CSI the *effective* SNR is clamped: a strong gain cannot push it past the range
    h = np.full(32, 3.0 + 0j, np.complex64)
    np.testing.assert_allclose(rx.decode(sym * 3.0, 40.0, csi=h), top, atol=1e-5)
    for bad in (float("nan"), float("-inf")):
        with pytest.raises(ValueError, match="finite"):
            rx.decode(sym, bad)


def test_a_bundle_without_a_recorded_range_is_not_clamped(tiny, tmp_path):
    dst = shutil.copytree(tiny, tmp_path / "norange")
    m = yaml.safe_load((dst / MANIFEST).read_text())
    del m["cat"]["snr_range_db"]
    (dst / MANIFEST).write_text(yaml.safe_dump(m))
    b = Bundle(dst)
    assert b.snr_range_db is None
    sym = b.transmitter(4).encode(load_dataset("fmnist_subset", "test", limit=8).images)
    assert not np.array_equal(b.receiver().decode(sym, 20.0), b.receiver().decode(sym, 60.0))


# --- rows 9-10: config ranges at load ----------------------------------------------------------

BAD_CONFIG = [
    ("teacher.epochs=-5", "teacher.epochs"),
    ("teacher.batch_size=0", "teacher.batch_size"),
    ("teacher.lr=.nan", "teacher.lr"),
    ("teacher.lr=0", "teacher.lr"),
    ("stage1.lr=-1e-3", "stage1.lr"),
    ("data.val_fraction=1.5", "data.val_fraction"),
    ("stage2.rates=[1000]", "stage2.rates"),
    ("stage2.rates=[]", "stage2.rates"),
    ("device=tpu", "device"),
    ("stage2.channel.channels=[foo]", "stage2.channel.channels[0]"),
    ("stage2.channel.weights=[1.0]", "stage2.channel.weights"),
    ("stage2.channel.snr_min_db=30", "stage2.channel.snr_min_db"),
    ("stage2.channel.fd_ts=5", "stage2.channel.fd_ts"),
    ("stage2.channel.csi=oracle", "stage2.channel.csi"),
    ("stage2.tx_snr_unknown_prob=2", "stage2.tx_snr_unknown_prob"),
    ("search.primitives=[conv_9x9]", "search.primitives[0]"),
    ("search.cost_metric=watts", "search.cost_metric"),
    ("baselines.rate=65", "baselines.rate"),
    ("data.name=mnist", "data.name"),
    ("seed=-1", "seed"),
    ("stage2.cat_heads=3", "stage2.cat_heads"),
    ("export.rate_table_snrs=[0,.inf]", "export.rate_table_snrs"),
]


@pytest.mark.parametrize("override,key", BAD_CONFIG)
def test_out_of_range_config_values_fail_at_load_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("rkdsc_train/configs/smoke.yaml", [override])
    msg = str(err.value)
    assert f"'{key}'" in msg and "\n" not in msg


def test_shipped_configs_pass_the_range_checks():
    from pathlib import Path

    for path in sorted(Path("rkdsc_train/configs").glob("*.yaml")):
        load_config(path)  # raises on a bad value
    cfg = load_config(None, ["teacher.epochs=0", "data.val_fraction=0", "stage2.rates=[1,64]"])
    assert cfg.teacher.epochs == 0 and cfg.stage2.rates == [1, 64]


# --- row 11 and 9: manifests -------------------------------------------------------------------


def _edit_manifest(tiny, tmp_path, edit) -> str:
    dst = shutil.copytree(tiny, tmp_path / "b")
    m = yaml.safe_load((dst / MANIFEST).read_text())
    edit(m, dst)
    (dst / MANIFEST).write_text(yaml.safe_dump(m))
    return str(dst)


def _outside(m, dst):
    outside = dst.parent / "other.safetensors"
    shutil.copy(dst / "head.safetensors", outside)
    m["files"]["head"]["file"] = "../other.safetensors"  # hash matches: confinement must stop it


def _absolute(m, dst):
    m["files"]["head"]["file"] = str((dst / "head.safetensors").resolve())


def _symlink(m, dst):
    outside = dst.parent / "elsewhere.safetensors"
    shutil.copy(dst / "head.safetensors", outside)
    (dst / "link.safetensors").symlink_to(outside)
    m["files"]["head"]["file"] = "link.safetensors"


BAD_MANIFESTS = {
    "parent dir": (_outside, "files.head.file"),
    "absolute": (_absolute, "files.head.file"),
    "symlink out": (_symlink, "outside the bundle folder"),
    "no dataset": (lambda m, d: m.pop("dataset"), "'dataset'"),
    "no sha256": (lambda m, d: m["files"]["cat"].pop("sha256"), "files.cat.sha256"),
    "files a list": (lambda m, d: m.update(files=["cat.safetensors"]), "'files'"),
    "size negative": (lambda m, d: m["dataset"].update(image_size=[-28, 28]), "image_size"),
    "size string": (lambda m, d: m["dataset"].update(image_size="28x28"), "image_size"),
    "k_max 0": (lambda m, d: m["cat"]["spec"].update(k_max=0), "cat.spec.k_max"),
    "rates above k_max": (lambda m, d: m["cat"]["spec"].update(rates=[4, 99]), "cat.spec.rates"),
    "snr range reversed": (lambda m, d: m["cat"].update(snr_range_db=[20, -10]), "snr_range_db"),
    "std zero": (lambda m, d: m["dataset"].update(std=[0.0]), "dataset.std"),
    "spec junk": (lambda m, d: m["head"]["spec"].update(in_features="many"), "spec of component"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_malformed_manifests_fail_with_one_line(case, tiny, tmp_path):
    edit, expect = BAD_MANIFESTS[case]
    path = _edit_manifest(tiny, tmp_path, edit)
    with pytest.raises(RkdscError) as err:
        Bundle(path)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_deeply_nested_manifest_fails_with_one_line(tmp_path):
    (tmp_path / MANIFEST).write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(RkdscError) as err:
        read_manifest(tmp_path)
    assert "\n" not in str(err.value)


# --- outputs checked up front ------------------------------------------------------------------


def test_output_problem(tmp_path):
    assert output_problem(tmp_path / "new" / "deeper" / "r.json") is None
    assert output_problem(tmp_path / "r.json") is None
    (tmp_path / "file").write_text("x")
    assert "not a folder" in output_problem(tmp_path / "file" / "r.json")
    assert "folder" in output_problem(tmp_path)
    assert output_problem(tmp_path, folder=True) is None
    assert output_problem("/proc/version/x.json") is not None
    assert output_problem("") is not None


# --- row 13: doctor checks what GNU Radio Companion needs --------------------------------------


def test_doctor_warns_when_grc_cannot_start(monkeypatch):
    import importlib

    from rkdsc import doctor

    real = importlib.import_module

    def no_gi(name, *a, **k):
        if name == "gi":
            raise ImportError("No module named 'gi'")
        return real(name, *a, **k)

    monkeypatch.setattr(doctor.importlib, "import_module", no_gi)
    c = doctor.check_grc_gui()
    assert c.status == doctor.WARN and "gir1.2-gtk-3.0" in c.fix
    assert "grc gui" in [c.name for c in doctor.run_checks()]


def test_resume_with_a_checkpoint_that_no_longer_fits_is_one_line(tmp_path):
    """`--resume` after a width change: torch's multi-line RuntimeError becomes one line naming
    the stage and the checkpoint; without --resume the error is left as it is."""
    from rkdsc_core.config import Config
    from rkdsc_train.context import StageContext
    from rkdsc_train.pipeline import _run_stage

    def stage(ctx):
        raise RuntimeError(
            "Error(s) in loading state_dict for Student:\n\tsize mismatch for stem.0.weight"
        )

    cfg = Config(out_dir=str(tmp_path))
    with pytest.raises(RkdscError) as err:
        _run_stage(stage, StageContext(cfg, "stage1", resume=True))
    assert "stage stage1" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RuntimeError):
        _run_stage(stage, StageContext(cfg, "stage1", resume=False))
