"""rkdsc_gr: GNU Radio blocks for RKD-SC, thin adapters over rkdsc_core.runtime and rkdsc_core.phy.

Blocks are imported lazily so that `rkdsc_gr.paths` works where GNU Radio is not installed.
"""

from importlib import import_module

# block class (= GRC id without the `rkdsc_` prefix) → module
_BLOCKS: dict[str, str] = {
    "image_source": "image_source",
    "semantic_tx": "semantic_tx",
    "semantic_rx": "semantic_rx",
    "accuracy_sink": "accuracy_sink",
    "symbol_channel": "symbol_channel",
    "rf_link": "rf_link",
}


def __getattr__(name: str):
    if name in _BLOCKS:
        return getattr(import_module(f"rkdsc_gr.{_BLOCKS[name]}"), name)
    raise AttributeError(f"module 'rkdsc_gr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_BLOCKS])
