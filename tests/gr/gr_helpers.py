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


def run_scenario(script, scenario: str, kw: dict, timeout: float) -> dict:
    """Run `python script scenario json(kw)` (a test file that runs one flowgraph scenario in a
    fresh process: a hung graph cannot hang the test run) and return the JSON of its last line."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(script), scenario, json.dumps(kw)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"scenario {scenario} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def collect(dbg) -> list:
    """The messages a `blocks.message_debug` stored, as Python values."""
    import pmt

    return [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]


def wait_for(cond, timeout: float = 30.0) -> bool:
    """Poll `cond` every 5 ms until true or `timeout` s pass; whether it came true."""
    from rkdsc_gr._polling import wait_until

    return wait_until(cond, timeout, 0.005)
