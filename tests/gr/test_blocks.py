"""rkdsc_gr channel blocks in running flowgraphs (in a subprocess with a timeout: this file is
also the scenario script): exactness without noise, large bursts, noise and fading statistics.

Scenarios: `python test_blocks.py NAME JSON_ARGS` prints one JSON line of measurements.
"""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
from gr_helpers import collect, list_source, run_scenario, wait_for


def scenario(name: str, **kwargs) -> dict:
    """Scenario `name` of this file in a fresh interpreter (5 min at most)."""
    return run_scenario(__file__, name, kwargs, 300.0)


def test_symbol_channel_is_exact_without_noise():
    """At +inf dB every channel returns h·x exactly, in order, with metadata kept and CSI true:
    constant within each image for block fading, varying for rayleigh_fast, 1 (absent) for AWGN.
    Bursts and a slow trickle (each PDU alone: the flush path) both come out whole."""
    res = scenario("channel_exact", n=300)
    for ch, r in res.items():
        assert r["received"] == r["sent"] == 300, ch
        assert r["stray"] == 0 and r["order_ok"] and r["meta_ok"], ch
        assert r["max_err"] < 1e-5, (ch, r["max_err"])
        if ch == "awgn":
            assert not r["has_csi"]
        else:
            assert r["has_csi"]
            assert (r["csi_spread"] < 1e-6) == (ch in ("rayleigh", "rician")), (ch, r)


def test_symbol_channel_passes_a_large_burst_whole():
    """Thousands of PDUs at once, then the end of input: every one comes out, and the graph then
    finishes by itself (pdu_to_tagged_stream used to stop with PDUs still queued)."""
    r = scenario("channel_burst", n=6000)
    for ch, res in r.items():
        assert res["received"] == res["sent"] == 6000 and res["finished"], (ch, res)


def test_symbol_channel_statistics():
    """Noise power is N0 = 10^(-SNR/10) per symbol; held Rayleigh gains are CN(0,1) per image."""
    r = scenario("channel_stats")
    assert abs(r["awgn_n0"] / 10 ** (-0.5) - 1) < 0.03  # 40k samples: 0.5 % std, 0.04 dB pool bias
    assert abs(r["awgn_n0_after_set_snr"] / 10 ** (-1.5) - 1) < 0.03  # runtime set_snr(15)
    assert r["awgn_snr_meta"] == [5.0, 15.0]
    # 6000 images, successive held gains correlated ~0.1: std of the mean |h|² ≈ 1.5 %
    assert abs(r["gain_mean"] - 1) < 0.06
    assert abs(r["p_below_0.1"] - (1 - np.exp(-0.1))) < 0.02
    assert abs(r["p_above_2"] - np.exp(-2)) < 0.025
    # accuracy depends on |h|²: successive images' gains must be nearly uncorrelated in power
    # (|E h_i h_{i+1}*|² ≈ J0(2π·0.3·K)² ≈ 0.06 for K = 4, less for larger K)
    assert abs(r["lag1_power_corr"]) < 0.15


# --- scenario implementations (run in the subprocess) -----------------------------------------


def _symbol_pdus(n: int, seed: int = 0) -> list:
    import pmt

    from rkdsc_gr._pdu import INDEX, make_pdu

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 65))
        x = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(
            np.complex64
        )
        out.append((make_pdu(pmt.dict_add(pmt.make_dict(), INDEX, pmt.from_long(i)), x), x))
    return out


def _scenario_channel_exact(n: int) -> dict:
    import pmt
    from gnuradio import blocks, gr

    import rkdsc_gr

    res = {}
    for ch in ("awgn", "rayleigh", "rayleigh_fast", "rician"):
        pdus = _symbol_pdus(n, seed=len(res))
        tb = gr.top_block()
        chan = rkdsc_gr.symbol_channel(ch, float("inf"), fd_ts=0.05, seed=3)
        dbg = blocks.message_debug()
        tb.msg_connect(chan, "out", dbg, "store")
        tb.start()
        port = pmt.intern("in")
        for i, (msg, _) in enumerate(pdus):
            chan.feeder.to_basic_block()._post(port, msg)
            if i >= n - 20:  # a trickle at the end: every PDU alone, flushed on its own
                wait_for(lambda i=i, dbg=dbg: dbg.num_messages() > i, 10.0)
        wait_for(lambda dbg=dbg: dbg.num_messages() >= n)
        tb.stop()
        tb.wait()
        got = collect(dbg)
        err, spread, order_ok, meta_ok = 0.0, 0.0, True, True
        for i, (meta, y) in enumerate(got):
            x = pdus[meta["index"]][1]
            order_ok &= meta["index"] == i
            meta_ok &= meta["snr_db"] == float("inf") and len(y) == len(x)
            h = np.asarray(meta.get("csi", np.ones_like(x)))
            err = max(err, float(np.max(np.abs(y - h * x))))
            spread = max(spread, float(np.max(np.abs(h - h[0]))))
        res[ch] = {
            "sent": n,
            "received": len(got),
            "stray": chan.stray(),
            "order_ok": bool(order_ok),
            "meta_ok": bool(meta_ok),
            "max_err": err,
            "has_csi": all("csi" in m for m, _ in got),
            "csi_spread": spread,
        }
    return res


def _run_channel(ch: str, snr_db: float, k: int, n: int, then_snr: float | None = None) -> list:
    """n PDUs of k symbols through `ch`; with `then_snr`, set_snr(then_snr) once the first half
    has come out, then the second half."""
    import pmt
    from gnuradio import blocks, gr

    import rkdsc_gr
    from rkdsc_gr._pdu import make_pdu

    rng = np.random.default_rng(1)
    x = ((rng.standard_normal((n, k)) + 1j * rng.standard_normal((n, k))) / np.sqrt(2)).astype(
        np.complex64
    )
    tb = gr.top_block()
    chan = rkdsc_gr.symbol_channel(ch, snr_db, seed=11)
    dbg = blocks.message_debug()
    tb.msg_connect(chan, "out", dbg, "store")
    tb.start()
    for i, row in enumerate(x):
        if then_snr is not None and i == n // 2:
            wait_for(lambda: dbg.num_messages() >= n // 2, 60.0)
            chan.set_snr(then_snr)
        chan.feeder.to_basic_block()._post(pmt.intern("in"), make_pdu(pmt.make_dict(), row))
    wait_for(lambda: dbg.num_messages() >= n, 60.0)
    tb.stop()
    tb.wait()
    return x, collect(dbg)


def _scenario_channel_stats() -> dict:
    x, got = _run_channel("awgn", 5.0, 16, 5000, then_snr=15.0)
    y = np.stack([v for _, v in got])
    n0 = np.mean(np.abs(y - x) ** 2, axis=1)
    out = {
        "awgn_n0": float(n0[:2500].mean()),
        "awgn_n0_after_set_snr": float(n0[2564:].mean()),  # ≤ 512 symbols of older noise
        "awgn_snr_meta": sorted({m["snr_db"] for m, _ in got}),
    }
    _, got = _run_channel("rayleigh", 30.0, 4, 6000)
    h = np.array([m["csi"][0] for m, _ in got])
    g = np.abs(h) ** 2
    out.update(
        gain_mean=float(g.mean()),
        **{"p_below_0.1": float(np.mean(g < 0.1)), "p_above_2": float(np.mean(g > 2))},
        lag1_power_corr=float(np.corrcoef(g[1:], g[:-1])[0, 1]),
    )
    return out


def _scenario_channel_burst(n: int) -> dict:
    from gnuradio import blocks, gr

    import rkdsc_gr

    out = {}
    for ch in ("awgn", "rayleigh"):
        msgs = [pdu for pdu, _ in _symbol_pdus(n, seed=1)]
        tb = gr.top_block()
        src, chan, dbg = (
            list_source(msgs),
            rkdsc_gr.symbol_channel(ch, 10.0),
            blocks.message_debug(),
        )
        tb.msg_connect(src, "out", chan, "in")
        tb.msg_connect(chan, "out", dbg, "store")
        done = threading.Event()
        tb.start()
        threading.Thread(target=lambda t=tb, d=done: (t.wait(), d.set()), daemon=True).start()
        finished = done.wait(60)
        if not finished:
            tb.stop()
            tb.wait()
        out[ch] = {"sent": n, "received": dbg.num_messages(), "finished": finished}
    return out


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    result = globals()[f"_scenario_{sys.argv[1]}"](**json.loads(sys.argv[2]))
    print(json.dumps(result))
