"""Bundle save/load (verified, strict) and the numpy runtime's contract and input checks."""

import numpy as np
import pytest
import yaml

from rkdsc_core.bundle import read_manifest
from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.errors import RkdscError
from rkdsc_core.runtime import Bundle
from rkdsc_core.testing import make_tiny_bundle


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny")


@pytest.fixture(scope="module")
def images():
    return load_dataset("fmnist_subset", "test", limit=6).images


def test_round_trip_shapes_power_and_rates(tiny, images):
    b = Bundle(tiny)
    assert b.rates == (4, 8, 16) and b.image_shape == (28, 28, 1)
    for k in (1, 4, 16):
        s = b.transmitter(k).encode(images)
        assert s.shape == (6, k) and s.dtype == np.complex64
        np.testing.assert_allclose((np.abs(s) ** 2).mean(1), 1.0, atol=1e-5)
    logits = b.receiver().decode(s, 10.0)
    assert logits.shape == (6, 10) and logits.dtype == np.float32
    cls, lg = b.receiver().classify(s, np.full(6, 10.0))
    np.testing.assert_array_equal(cls, lg.argmax(1))


def test_single_image_equals_batched(tiny, images):
    b = Bundle(tiny)
    tx, rx = b.transmitter(8), b.receiver()
    batch = tx.encode(images)
    np.testing.assert_allclose(tx.encode(images[2]), batch[2:3], atol=1e-5)
    np.testing.assert_allclose(rx.decode(batch[2], 3.0), rx.decode(batch, 3.0)[2:3], atol=1e-4)


def test_csi_path_equals_equalised_path(tiny, images):
    rx = Bundle(tiny).receiver()
    x = Bundle(tiny).transmitter(8).encode(images)
    h = np.array([0.5 + 0.5j, 2.0, -1j, 0.3, 1.0, 1.5 - 0.2j], np.complex64)
    direct = rx.decode(x, 5.0 + 10 * np.log10(np.abs(h) ** 2))
    via_csi = rx.decode(x * h[:, None], 5.0, csi=h)
    np.testing.assert_allclose(direct, via_csi, atol=1e-4)


def test_bad_inputs_raise_value_errors(tiny, images):
    b = Bundle(tiny)
    tx, rx = b.transmitter(4), b.receiver()
    with pytest.raises(ValueError, match="uint8"):
        tx.encode(images.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        tx.encode(images[:, :20])
    good = tx.encode(images)
    with pytest.raises(ValueError, match="1..16"):
        rx.decode(np.zeros((2, 17), np.complex64), 0.0)
    with pytest.raises(ValueError, match="complex"):
        rx.decode(np.zeros((2, 4), np.float32), 0.0)
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rx.decode(bad, 0.0)
    with pytest.raises(ValueError, match="snr_db"):
        rx.decode(good, np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        rx.decode(good, float("nan"))
    with pytest.raises(ValueError, match="rate"):
        b.transmitter(0)


def test_choose_rate_uses_the_table(tiny):
    b = Bundle(tiny)  # table: snr [-5, 5]; acc rows per K (4, 8, 16): [.1,.3], [.2,.35], [.3,.4]
    assert b.choose_rate(6.0, 0.7) == 8  # at 5 dB: 0.35 >= 0.7 * 0.5
    assert b.choose_rate(6.0, 0.5) == 4
    assert b.choose_rate(0.0, 0.5) == 16  # at -5 dB none reaches 0.25 but K=16 (0.3) does
    assert b.choose_rate(-20.0, 0.5) == 16  # below the table: the largest K
    with pytest.raises(ValueError, match="rayleigh"):
        b.choose_rate(0.0, 0.5, channel="rayleigh")


def test_missing_and_corrupt_files_fail_clearly(tiny, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "cat.safetensors").unlink()
    with pytest.raises(RkdscError, match="missing cat.safetensors"):
        Bundle(broken)
    shutil.copy(tiny / "cat.safetensors", broken / "cat.safetensors")
    data = bytearray((broken / "head.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (broken / "head.safetensors").write_bytes(bytes(data))
    with pytest.raises(RkdscError, match="corrupt"):
        Bundle(broken)
    with pytest.raises(RkdscError, match="no bundle"):
        Bundle(tmp_path / "nothing")


def test_spec_mismatch_fails_clearly(tiny, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny, other)
    mf = read_manifest(other)
    mf["head"]["spec"]["num_classes"] = 11
    (other / "manifest.yaml").write_text(yaml.safe_dump(mf))
    with pytest.raises(RkdscError, match="does not fit its spec"):
        Bundle(other)


def test_fast_paths_equal_the_training_modules(tiny, images):
    """The runtime's cheaper paths (BatchNorm folded into the student; the decoder run on the K
    received symbols instead of K_max with masked padding) give what the modules give."""
    import torch

    from rkdsc_core.data.transforms import to_tensor

    b = Bundle(tiny)
    assert not b.student.training and b.inference_student() is not b.student  # folded copy
    snr = np.linspace(-5, 15, len(images)).astype(np.float32)
    for k in (1, 4, b.k_max):
        y = b.transmitter(k).encode(images, 5.0)
        with torch.inference_mode():
            feat = b.student(to_tensor(images, b.norm))[0]
            want = b.cat.encode(feat, k, 5.0)[:, :k].numpy()
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
        logits = b.receiver().decode(y, snr)
        pad = b.k_max - k
        mask = (torch.arange(b.k_max) < k).expand(len(images), -1)
        with torch.inference_mode():
            s = torch.from_numpy(snr)[:, None].expand(-1, b.k_max)
            padded = torch.nn.functional.pad(torch.from_numpy(y), (0, pad))
            want = b.head(b.cat.decode(padded, s * mask, mask)).numpy()
        np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)


def test_unfoldable_student_is_used_as_it_is(tiny, monkeypatch):
    """If neither TorchScript nor torch.fx can fold the student, the runtime uses it unchanged."""
    import torch

    from rkdsc_core import transceiver

    b = Bundle(tiny)

    def boom(*a, **k):
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(torch.jit, "trace", boom)
    monkeypatch.setattr(torch.fx, "symbolic_trace", boom)
    import torch.fx.experimental.optimization as opt

    monkeypatch.setattr(opt, "fuse", boom)
    assert transceiver.fold_batchnorm(b.student, b.image_shape, b.device) is b.student
