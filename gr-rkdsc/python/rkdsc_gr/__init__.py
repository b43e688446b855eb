"""rkdsc_gr: GNU Radio blocks for RKD-SC, thin adapters over rkdsc_core.runtime and rkdsc_core.phy.

Blocks are imported lazily so that `rkdsc_gr.paths` works where GNU Radio is not installed.
`rkdsc_gr.<block>` is always the block class, even though its module has the same name.
"""

import sys
import types
from importlib import import_module

from rkdsc_core.registry import Registry  # standard library only: no torch, no GNU Radio

# The block registry: block class (= GRC id without the `rkdsc_` prefix) → its module.
_BLOCKS: Registry[str] = Registry(
    "block",
    {
        "image_source": "image_source",
        "semantic_tx": "semantic_tx",
        "semantic_rx": "semantic_rx",
        "accuracy_sink": "accuracy_sink",
        "symbol_channel": "symbol_channel",
        "keyed_channel": "keyed_channel",
        "feedback_link": "feedback_link",
        "rf_link": "rf_link",
        "ota_tx": "ota_tx",
        "ota_rx": "ota_rx",
        "ota_channel": "ota_channel",
        "ota_sigmf_sink": "sigmf_io",
        "ota_sigmf_source": "sigmf_io",
        "ota_decision_log": "ota_decision_log",
    },
)


class _Package(types.ModuleType):
    """Resolves block names on first use; when the import system binds a block's module to the
    package (it does so after `import rkdsc_gr.<block>`), the class is bound instead, so that
    generated flowgraphs calling `rkdsc_gr.<block>(...)` twice keep working."""

    def __getattr__(self, name: str):
        if name in _BLOCKS:
            module = import_module(f"{__name__}.{_BLOCKS[name]}")
            return getattr(module, name)  # the import bound it already, through __setattr__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in _BLOCKS and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_BLOCKS})


sys.modules[__name__].__class__ = _Package
