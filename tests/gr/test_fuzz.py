"""Fuzz: 1200 malformed PDUs shuffled among 300 good ones through each PDU block in a running
flowgraph. Every good PDU comes out, every bad one is counted as dropped, and the graph stops.

(image_source has no input and rf_link is a stream block: no PDUs to fuzz.) Each block runs in a
subprocess with a timeout; `python test_fuzz.py BLOCK BUNDLE` prints one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gr_helpers import list_source

pytestmark = pytest.mark.gnuradio

HERE = Path(__file__).resolve()
N_GOOD, N_BAD = 300, 1200


@pytest.mark.parametrize(
    "block",
    ["semantic_tx", "symbol_channel", "keyed_channel", "ota_tx", "semantic_rx", "accuracy_sink"],
)
def test_malformed_pdus_are_dropped_and_good_ones_flow(block, tiny_bundle):
    proc = subprocess.run(
        [sys.executable, str(HERE), block, tiny_bundle], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["bad_sent"] >= 1000
    assert r["dropped"] == r["bad_sent"], r["reasons"]
    assert r["good_out"] == r["good_sent"] == N_GOOD
    assert r["good_indices_ok"]
    assert r["stopped_s"] < 10


def test_logs_write_strict_json_whatever_the_metadata(tmp_path):
    """Issue 21 row 12: NaN / inf / huge metadata reach the decision log and the SigMF
    annotator; every line and the .sigmf-meta parse as strict JSON (non-finite numbers become
    null or are left out), and a value JSON cannot hold drops that record, counted."""
    proc = subprocess.run(
        [sys.executable, str(HERE), "logs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["log_lines"] == r["log_written"] == r["scalar_sent"] > 0
    assert r["log_dropped"] == r["nonscalar_sent"] > 0
    assert r["null_snr"] > 0 and r["annotations"] == r["scalar_sent"]


def _strict(text: str):
    def no_constant(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=no_constant)


def _logs(folder: str) -> dict:
    import pmt
    from gnuradio import blocks, gr

    from rkdsc_gr._pdu import make_pdu
    from rkdsc_gr.ota_decision_log import ota_decision_log
    from rkdsc_gr.sigmf_io import ota_sigmf_sink

    hostile = [float("nan"), float("inf"), float("-inf"), 1e300, -0.0, 3.5]
    msgs, nonscalar = [], 0
    for i in range(60):
        d = pmt.make_dict()
        for key, v in (("frame_index", i), ("index", i), ("label", i % 10), ("class", i % 7)):
            d = pmt.dict_add(d, pmt.intern(key), pmt.from_long(v))
        d = pmt.dict_add(d, pmt.intern("sample_start"), pmt.from_long(100 * i))
        d = pmt.dict_add(d, pmt.intern("sample_count"), pmt.from_long(90))
        d = pmt.dict_add(d, pmt.intern("snr_db"), pmt.from_double(hostile[i % len(hostile)]))
        d = pmt.dict_add(d, pmt.intern("cfo"), pmt.from_double(hostile[(i + 1) % len(hostile)]))
        if i % 9 == 4:  # a value JSON cannot hold as a scalar
            d = pmt.dict_add(d, pmt.intern("rate"), pmt.init_f32vector(2, [1.0, 2.0]))
            nonscalar += 1
        msgs.append(make_pdu(d, np.zeros(4, np.float32)))
    log_path = f"{folder}/decisions.jsonl"
    dlog = ota_decision_log(log_path)
    rec = ota_sigmf_sink(f"{folder}/rec", 1e6, 915e6, "test")
    ann = rec.annotator
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c([0j] * 4096, True), rec)  # a stream to record
    idle = gr.basic_block("idle", None, None)  # puts the log in the graph; never sends
    idle.message_port_register_out(pmt.intern("strobe"))
    tb.msg_connect(idle, "strobe", dlog, "in")
    tb.start()
    for m in msgs:
        dlog.to_basic_block()._post(pmt.intern("in"), m)
        ann.to_basic_block()._post(pmt.intern("in"), m)
    deadline = time.monotonic() + 60
    while dlog.count() + dlog.dropped() < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.01)
    while len(ann.annotations) + ann._drops.total < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.01)
    tb.stop()
    tb.wait()  # the blocks' stop() closes the log and writes the .sigmf-meta
    lines = [_strict(x) for x in Path(log_path).read_text().splitlines()]
    meta = _strict(Path(f"{folder}/rec.sigmf-meta").read_text())
    return {
        "scalar_sent": len(msgs) - nonscalar,
        "nonscalar_sent": nonscalar,
        "log_lines": len(lines),
        "log_written": dlog.count(),
        "log_dropped": dlog.dropped(),
        "null_snr": sum(x.get("snr_db", 0) is None for x in lines),
        "annotations": len(meta["annotations"]),
    }


# --- the scenario (subprocess) -----------------------------------------------------------------


def _malformed(kind: str, rng: np.random.Generator) -> list:
    """A catalogue of PDUs that block `kind` must reject, cycled with random sizes to N_BAD."""
    import pmt

    def c32(n, fill=None):
        v = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        if fill is not None:
            v[rng.integers(n)] = fill
        return pmt.init_c32vector(n, v.tolist())

    def meta(**kv):
        d = pmt.make_dict()
        for k, v in kv.items():
            d = pmt.dict_add(d, pmt.intern(k), v)
        return d

    good_vec = {
        "semantic_tx": lambda: pmt.init_u8vector(784, [1] * 784),
        "symbol_channel": lambda: c32(8),
        "keyed_channel": lambda: c32(8),
        "ota_tx": lambda: c32(8),
        "semantic_rx": lambda: c32(8),
        "accuracy_sink": lambda: pmt.init_f32vector(10, [0.0] * 10),
    }[kind]
    good_meta = {
        "keyed_channel": lambda: meta(index=pmt.from_long(3)),
        "semantic_rx": lambda: meta(snr_db=pmt.from_double(5.0)),
        "accuracy_sink": lambda: meta(label=pmt.from_long(1), **{"class": pmt.from_long(1)}),
    }.get(kind, pmt.make_dict)
    common = [
        lambda: pmt.PMT_NIL,
        lambda: pmt.PMT_T,
        lambda: pmt.from_long(int(rng.integers(-9, 9))),
        lambda: pmt.from_double(float("nan")),
        lambda: pmt.intern("pdu"),
        lambda: pmt.make_dict(),
        lambda: good_vec(),  # a bare vector, no metadata pair
        lambda: pmt.make_tuple(good_meta(), good_vec()),
        lambda: pmt.cons(pmt.from_long(1), good_vec()),
        lambda: pmt.cons(pmt.intern("meta"), good_vec()),
        lambda: pmt.cons(good_vec(), good_vec()),
        lambda: pmt.cons(pmt.cons(pmt.intern("a"), pmt.from_long(1)), good_vec()),
        lambda: pmt.cons(pmt.make_vector(2, pmt.PMT_NIL), good_vec()),
    ]
    payload = {
        "semantic_tx": [
            lambda: pmt.PMT_NIL,
            lambda: pmt.from_long(3),
            lambda: c32(784),
            lambda: pmt.init_f32vector(784, [0.5] * 784),
            lambda: pmt.init_s32vector(784, [1] * 784),
            lambda: pmt.init_u8vector(0, []),
            lambda: (lambda n: pmt.init_u8vector(n, [0] * n))(int(rng.choice([1, 783, 785, 1568]))),
        ],
        "symbol_channel": [
            lambda: pmt.PMT_NIL,
            lambda: pmt.init_u8vector(8, [1] * 8),
            lambda: pmt.init_f32vector(8, [1.0] * 8),
            lambda: pmt.init_c32vector(0, []),
            lambda: c32(int(rng.integers(4097, 6000))),
            lambda: c32(int(rng.integers(1, 64)), complex("nan")),
            lambda: c32(int(rng.integers(1, 64)), complex("inf")),
            lambda: c32(8, complex(1e30, 0)),  # finite, but 300 dB above unit power
        ],
        "semantic_rx": [
            lambda: pmt.init_f32vector(8, [1.0] * 8),
            lambda: pmt.init_c32vector(0, []),
            lambda: c32(int(rng.integers(17, 300))),  # more than the tiny bundle's k_max = 16
            lambda: c32(8, complex("nan")),
            lambda: c32(8, complex(1e30, -1e30)),  # finite but huge: NaN logits, never a decision
            lambda: c32(8, complex(0, 2e6)),
        ],
        "accuracy_sink": [],
    }["symbol_channel" if kind in ("keyed_channel", "ota_tx") else kind]  # same symbol payloads
    metas = {
        "keyed_channel": [  # the draws are keyed by the image index
            lambda: meta(),
            lambda: meta(index=pmt.from_long(-4)),
            lambda: meta(index=pmt.from_double(2.5)),
            lambda: meta(index=pmt.intern("seven")),
        ],
        "semantic_rx": [
            lambda: meta(),
            lambda: meta(snr_db=pmt.intern("high")),
            lambda: meta(snr_db=pmt.from_double(float(rng.choice([np.nan, -np.inf])))),
            # finite as a double, inf as a float32: used to cost the whole batch (issue 21 row 2)
            lambda: meta(snr_db=pmt.from_double(float(rng.choice([1e300, -1e300, 1e39])))),
            lambda: meta(snr_db=pmt.from_double(float(rng.choice([301.0, -1e9, 1e30])))),
            lambda: meta(snr_db=pmt.cons(pmt.from_double(1.0), pmt.from_double(2.0))),
            lambda: meta(snr_db=pmt.make_dict()),
            lambda: meta(snr_db=pmt.list1(pmt.from_double(5.0))),
            lambda: meta(snr_db=pmt.from_complex(5 + 0j)),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=c32(8, complex(1e30, 0))),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=pmt.list1(pmt.from_long(1))),
            lambda: meta(snr_db=pmt.PMT_T),
            lambda: meta(snr_db=pmt.init_f32vector(1, [3.0])),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=pmt.init_f32vector(8, [1.0] * 8)),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=c32(int(rng.integers(1, 8)))),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=c32(8, complex("nan"))),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=pmt.from_complex(complex("inf"))),
            lambda: meta(snr_db=pmt.from_double(5.0), csi=pmt.intern("perfect")),
        ],
        "accuracy_sink": [
            lambda: meta(label=pmt.from_long(1)),
            lambda: meta(**{"class": pmt.from_long(1)}),
            lambda: meta(label=pmt.from_long(1), **{"class": pmt.from_double(1.0)}),
            lambda: meta(label=pmt.intern("shoe"), **{"class": pmt.from_long(1)}),
            lambda: meta(label=pmt.from_long(1), **{"class": pmt.string_to_symbol("7")}),
            lambda: meta(label=pmt.from_double(1e300), **{"class": pmt.from_long(1)}),
            lambda: meta(label=pmt.list1(pmt.from_long(1)), **{"class": pmt.from_long(1)}),
            lambda: meta(label=pmt.from_long(1), **{"class": pmt.make_dict()}),
            lambda: pmt.PMT_NIL,  # cons(NIL, vec): no metadata at all
        ],
    }.get(kind, [])
    makers = common
    makers += [lambda p=p: pmt.cons(good_meta(), p()) for p in payload]
    makers += [lambda m=m: pmt.cons(m(), good_vec()) for m in metas]
    return [makers[i % len(makers)]() for i in range(N_BAD)]


def _good(kind: str, i: int, rng: np.random.Generator):
    import pmt

    from rkdsc_gr._pdu import make_pdu

    d = pmt.dict_add(pmt.make_dict(), pmt.intern("index"), pmt.from_long(i))
    d = pmt.dict_add(d, pmt.intern("label"), pmt.from_long(i % 10))
    if kind == "semantic_tx":
        return make_pdu(d, rng.integers(0, 256, 784).astype(np.uint8))
    k = int(rng.integers(1, 17))
    x = ((rng.standard_normal(k) + 1j * rng.standard_normal(k)) / np.sqrt(2)).astype(np.complex64)
    if kind in ("symbol_channel", "keyed_channel", "ota_tx"):
        return make_pdu(d, x)
    if kind == "semantic_rx":
        snr = float(rng.uniform(-5, 20)) if i % 10 else float("inf")  # inf: a noiseless link
        d = pmt.dict_add(d, pmt.intern("snr_db"), pmt.from_double(snr))
        if i % 2:
            d = pmt.dict_add(d, pmt.intern("csi"), pmt.from_complex(complex(0.3, -0.9)))
        return make_pdu(d, x)
    d = pmt.dict_add(d, pmt.intern("class"), pmt.from_long(i % 7))
    return make_pdu(d, np.zeros(10, np.float32))


def _scenario(kind: str, bundle: str) -> dict:

    import pmt
    from gnuradio import blocks, gr

    import rkdsc_gr

    rng = np.random.default_rng(7)
    bad = _malformed(kind, rng)
    good = [_good(kind, i, rng) for i in range(N_GOOD)]
    msgs = bad + good
    order = rng.permutation(len(msgs))
    msgs = [msgs[i] for i in order]

    make = {
        "semantic_tx": lambda: rkdsc_gr.semantic_tx(bundle, rate=8, max_batch=64),
        "symbol_channel": lambda: rkdsc_gr.symbol_channel("rayleigh", 10.0),
        "keyed_channel": lambda: rkdsc_gr.keyed_channel("rayleigh", 10.0),
        "semantic_rx": lambda: rkdsc_gr.semantic_rx(bundle, max_batch=64),
        "accuracy_sink": lambda: rkdsc_gr.accuracy_sink(),
        "ota_tx": lambda: rkdsc_gr.ota_tx(max_queue=4 * N_BAD),
    }
    tb = gr.top_block()
    src, blk, dbg = list_source(msgs), make[kind](), blocks.message_debug()
    tb.msg_connect(src, "out", blk, "in")
    if kind == "ota_tx":  # bursts out as a stream; one frame record per burst on `frames`
        tb.connect(blk, blocks.null_sink(gr.sizeof_gr_complex))
        tb.msg_connect(blk, "frames", dbg, "store")
    elif kind != "accuracy_sink":
        tb.msg_connect(blk, "out", dbg, "store")

    def good_out() -> int:
        return blk.count() if kind == "accuracy_sink" else dbg.num_messages()

    tb.start()
    deadline = time.monotonic() + 60
    while (good_out() < N_GOOD or blk.dropped() < N_BAD) and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    tb.stop()
    tb.wait()
    stopped = time.monotonic() - t0
    if kind == "accuracy_sink":
        indices_ok = blk.correct() == sum(i % 10 == i % 7 for i in range(N_GOOD))
    else:
        seen = sorted(pmt.to_python(dbg.get_message(i))[0]["index"] for i in range(good_out()))
        indices_ok = seen == list(range(N_GOOD))
    drops = {"symbol_channel": lambda: blk.feeder._drops, "ota_tx": lambda: blk.framer._drops}.get(
        kind, lambda: blk._drops
    )()
    return {
        "bad_sent": len(bad),
        "good_sent": len(good),
        "dropped": blk.dropped(),
        "reasons": drops.reasons,
        "good_out": good_out(),
        "good_indices_ok": bool(indices_ok),
        "stopped_s": stopped,
    }


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    if sys.argv[1] == "logs":
        print(json.dumps(_logs(sys.argv[2])))
    else:
        print(json.dumps(_scenario(sys.argv[1], sys.argv[2])))
