"""How long `stop()` + `wait()` take with a backlog (issue 21, row 6): image_source (10,000
images) → semantic_tx → symbol_channel → semantic_rx → accuracy_sink on the default bundle,
stopped after 2 s. Prints one JSON line.

    .venv/bin/python scripts/stop_time.py
"""

from __future__ import annotations

import json
import time

from gnuradio import gr

import rkdsc_gr


def main() -> None:
    tb = gr.top_block()
    src = rkdsc_gr.image_source("fmnist", "test", n_images=10000)
    tx = rkdsc_gr.semantic_tx("default", rate=16)
    ch = rkdsc_gr.symbol_channel("awgn", 10.0)
    rx = rkdsc_gr.semantic_rx("default")
    acc = rkdsc_gr.accuracy_sink()
    tb.msg_connect(src, "out", tx, "in")
    tb.msg_connect(tx, "out", ch, "in")
    tb.msg_connect(ch, "out", rx, "in")
    tb.msg_connect(rx, "out", acc, "in")
    tb.start()
    time.sleep(2.0)
    t0 = time.monotonic()
    tb.stop()
    tb.wait()
    out = {
        "stop_wait_s": round(time.monotonic() - t0, 3),
        "encoded": tx.encoded(),
        "decisions": acc.count(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
