"""The analog baseline with no CAT: the student feature's top PCA coefficients sent directly as
K complex symbols through the same keyed channel draws as RKD-SC.
"""

from __future__ import annotations

import numpy as np
import torch

from rkdsc_core.channels import apply_keyed, make_channel
from rkdsc_core.eval.baselines.features import (
    BaselineRun,
    student_features,
    student_head_classes,
)
from rkdsc_core.eval.baselines.source_coding import Pca
from rkdsc_core.eval.harness import point


def no_cat(r: BaselineRun) -> tuple[list[dict], dict]:
    """The student feature sent directly as analog symbols, no CAT: the top 2K PCA coefficients
    (fitted on `train`; all D dims when D ≤ 2K) as K complex symbols, each image power-normalised;
    the receiver (MMSE-equalised symbols) rescales by the mean training norm, reconstructs the
    feature and classifies it with the student's own head."""
    bundle, data, rate = r.bundle, r.data, r.rate
    ftr = student_features(bundle, r.train.images)
    pca = Pca.fit(ftr, 2 * rate)
    dims = pca.basis.shape[0]

    def to_symbols(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.zeros((len(feats), 2 * rate))
        c[:, :dims] = pca.project(feats)
        z = c[:, 0::2] + 1j * c[:, 1::2]
        scale = np.sqrt(np.mean(np.abs(z) ** 2, 1, keepdims=True))
        return (z / np.maximum(scale, 1e-12)).astype(np.complex64), scale

    _, tr_scale = to_symbols(ftr)
    scale = float(tr_scale.mean())
    sym, _ = to_symbols(student_features(bundle, data.images))
    ch = make_channel(r.channel)
    pts = []
    for s in r.snrs:
        out = apply_keyed(ch, torch.from_numpy(sym), float(s), np.arange(len(sym)), r.seed)
        y = out.symbols.numpy() * scale
        c = np.zeros((len(y), 2 * rate))
        c[:, 0::2], c[:, 1::2] = y.real, y.imag
        got = student_head_classes(bundle, pca.reconstruct(c[:, :dims]).astype(np.float32))
        pts.append(point({"snr_db": float(s)}, got == data.labels))
    info = {
        "channel_uses": rate,
        "pca_dims": dims,
        "feature_dim": int(ftr.shape[1]),
        "receiver": "MMSE-equalised symbols × mean training scale → PCA inverse → student head",
    }
    return pts, info
