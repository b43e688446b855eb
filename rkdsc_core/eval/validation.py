"""The validation points that pick the best epoch of stage 2 and of every learned baseline (in the
pipeline and when `rkdsc eval` trains one): accuracy at a few (channel, SNR) points."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rkdsc_core.channels import make_channel

# (channel, SNR dB): the best epoch is the one with the best mean accuracy over these points.
VAL_POINTS = (("awgn", 0.0), ("awgn", -5.0), ("rayleigh", 5.0))


@torch.no_grad()
def score_points(
    predict: Callable[[torch.nn.Module, float, torch.Generator], torch.Tensor],
    labels: torch.Tensor,
    seed: int,
    suffix: str = "",
) -> dict[str, float]:
    """Accuracy at each of `VAL_POINTS`: `predict(channel, snr_db, generator)` → logits [N, C] of
    the validation images (labels int64 [N]), with a fresh generator seeded by `seed` per point
    (CPU draws, so the scores match across devices). Keys `<channel>_<snr>dB<suffix>`."""
    res = {}
    for name, snr in VAL_POINTS:
        logits = predict(make_channel(name), snr, torch.Generator().manual_seed(seed))
        res[f"{name}_{snr:g}dB{suffix}"] = float((logits.argmax(1) == labels).float().mean())
    return res
