"""Labels by image index for receivers that measure accuracy: frames carry no labels (the header
spends its bits on K, N and indices), so a receiver looks them up in the dataset it was sent from.
"""

from __future__ import annotations

import numpy as np

from rkdsc_core.runtime import load_bundle


def bundle_labels(
    bundle: str = "default", split: str = "test", root: str = "", n: int | None = None
) -> np.ndarray:
    """Labels, int64 [n], of the images `rkdsc_image_source` sends of the split of a bundle's
    dataset, by PDU index: `n` of them (the class-balanced subset; None or 0: the whole split)."""
    return load_bundle(bundle).dataset.load(split, root or None, n or None).labels
