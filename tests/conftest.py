"""Shared test set-up: offline hub, small torch thread count, GNU Radio tests skip without it."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Small kernels dominate the tests; on a shared 2-core machine one thread is much faster.
torch.set_num_threads(1)


def _have_gnuradio() -> bool:
    try:
        from gnuradio import gr  # noqa: F401
    except Exception:  # noqa: BLE001 - numpy-2 builds fail with non-ImportErrors too
        return False
    return True


HAVE_GR = _have_gnuradio()


def pytest_collection_modifyitems(config, items):
    skip_gr = pytest.mark.skip(reason="GNU Radio's Python bindings are not importable")
    for item in items:
        if "gnuradio" in item.keywords and not HAVE_GR:
            item.add_marker(skip_gr)
