"""The numpy-in / numpy-out runtime for radios and GNU Radio (DESIGN.md §4): `load_bundle("default"
| path)` returns a `Bundle` whose `transmitter(rate)` and `receiver()` give a `Transmitter`
(images uint8 [B, H, W, C] → symbols complex64 [B, K]) and a `Receiver` (symbols + SNR → logits
float32 [B, C]). The bundle lives in `rkdsc_core.bundle`, the transmitter and receiver (and their
cheaper inference paths, and the incremental-redundancy receiver `IRReceiver`) in
`rkdsc_core.transceiver`; this module is their one public door.
"""

from rkdsc_core.bundle import Bundle, load_bundle
from rkdsc_core.transceiver import IRDecision, IRIncrement, IRReceiver, Receiver, Transmitter

__all__ = [
    "Bundle",
    "IRDecision",
    "IRIncrement",
    "IRReceiver",
    "Receiver",
    "Transmitter",
    "load_bundle",
]
