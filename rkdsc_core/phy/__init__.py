"""Non-learned waveform pieces in numpy: preamble, header + CRC, pilots, frame layout, RRC shaping
and PAPR limit, and the receiver maths (timing, CFO, equalisation, SNR estimation).

Typical use: `FrameModulator(cfg).modulate(Header(rate=K, ...), payload).samples` at the
transmitter; `FrameReceiver(cfg).receive(matched_filter(rx, rrc_taps(...)))` at the receiver (or
`acquire` / `finish` from a streaming block). No GNU Radio here: `rkdsc_gr.ota_tx` / `ota_rx`
adapt it.
"""

from rkdsc_core.phy.config import HEADER_SYMBOLS, FrameConfig, SectionLayout, section_layout
from rkdsc_core.phy.header import (
    Header,
    bundle_id_from_bytes,
    decode_header,
    encode_header,
    header_bits,
    parse_bits,
)
from rkdsc_core.phy.modulator import Burst, FrameModulator, frame_symbols
from rkdsc_core.phy.preamble import preamble_symbols, zadoff_chu
from rkdsc_core.phy.pulse import clip, matched_filter, rrc_taps, shape
from rkdsc_core.phy.receiver import Acquisition, FrameReceiver, FrameRejected, RxFrame

__all__ = [
    "HEADER_SYMBOLS",
    "Acquisition",
    "Burst",
    "FrameConfig",
    "FrameModulator",
    "FrameReceiver",
    "FrameRejected",
    "Header",
    "RxFrame",
    "SectionLayout",
    "bundle_id_from_bytes",
    "clip",
    "decode_header",
    "encode_header",
    "frame_symbols",
    "header_bits",
    "matched_filter",
    "parse_bits",
    "preamble_symbols",
    "rrc_taps",
    "section_layout",
    "shape",
    "zadoff_chu",
]
