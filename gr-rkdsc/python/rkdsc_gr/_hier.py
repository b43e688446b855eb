"""How every rkdsc hierarchical block opens: one gr_complex stream port in and/or out, or none
(a block of message ports only)."""

from __future__ import annotations

from gnuradio import gr


def _signature(stream: bool) -> gr.io_signature:
    return gr.io_signature(1, 1, gr.sizeof_gr_complex) if stream else gr.io_signature(0, 0, 0)


def init_hier(block: gr.hier_block2, name: str, stream_in: bool, stream_out: bool) -> None:
    """`gr.hier_block2.__init__` of `block`, named `name`, with the stream ports asked for."""
    gr.hier_block2.__init__(block, name, _signature(stream_in), _signature(stream_out))
