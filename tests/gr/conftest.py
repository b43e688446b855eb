"""Fixtures shared by the GNU Radio tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> str:
    """A tiny random bundle (rkdsc_core.testing), made once per test module."""
    from rkdsc_core.testing import make_tiny_bundle

    return str(make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny"))
