"""rkdsc_gr: GNU Radio blocks for RKD-SC, thin adapters over rkdsc_core.runtime and rkdsc_core.phy.

Blocks are imported lazily so that `rkdsc_gr.paths` works where GNU Radio is not installed.
"""

from importlib import import_module

_BLOCKS: dict[str, str] = {}


def __getattr__(name: str):
    if name in _BLOCKS:
        return getattr(import_module(f"rkdsc_gr.{_BLOCKS[name]}"), name)
    raise AttributeError(f"module 'rkdsc_gr' has no attribute {name!r}")
