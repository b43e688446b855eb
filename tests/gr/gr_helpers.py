"""Helpers shared by the GNU Radio tests (imported by name: tests/gr is on sys.path)."""

from __future__ import annotations


def list_source(msgs: list):
    """A message block that publishes `msgs` on `out` when started, then is done."""
    import threading

    import pmt
    from gnuradio import gr

    from rkdsc_gr._pdu import post_done

    class list_source(gr.basic_block):  # noqa: N801
        def __init__(self):
            gr.basic_block.__init__(self, "list_source", None, None)
            self.message_port_register_out(pmt.intern("out"))

        def start(self):
            threading.Thread(target=self._run, daemon=True).start()
            return True

        def _run(self):
            for m in msgs:
                self.message_port_pub(pmt.intern("out"), m)
            post_done(self)

    return list_source()
