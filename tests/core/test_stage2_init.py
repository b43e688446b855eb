"""stage2.init_from: stage 2 can start from a bundle's CAT and head (a fine-tune), and says so
clearly when the configured CAT has another shape."""

import pytest
import torch

from rkdsc_core.codec.cat import CATCodec, CATConfig
from rkdsc_core.errors import RkdscError


def test_init_from_bundle_copies_cat_and_head(tmp_path):
    from rkdsc_core.runtime import load_bundle
    from rkdsc_core.testing import make_tiny_bundle
    from rkdsc_train.stages.stage2 import init_from_bundle

    path = make_tiny_bundle(tmp_path / "b")
    src = load_bundle(path)
    cat, head = CATCodec(src.cat.cfg), torch.nn.Linear(32, 10)
    init_from_bundle(cat, head, str(path))
    for a, b in zip(cat.state_dict().values(), src.cat.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(head.weight, src.head.weight)
    other = CATCodec(
        CATConfig(**{**src.cat.cfg.to_dict(), "enc_out": "token", "rates": (4, 8, 16)})
    )
    with pytest.raises(RkdscError, match="stage2.init_from"):
        init_from_bundle(other, head, str(path))
