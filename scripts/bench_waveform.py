"""Throughput of the OTA waveform flowgraph, in MS/s (goal: >= 2 MS/s, real time for a USRP at
2 MS/s), on at most 2 cores. Three runs over the same random payloads (K = 16 by default, N images
per frame with --images-per-frame):

    tx:    symbol PDUs → ota_tx → null sink
    rx:    recorded impaired samples (vector source) → ota_rx
    chain: symbol PDUs → ota_tx → ota_channel (CFO 1e-3, +50 ppm, 3 taps, 10 dB) → ota_rx

No model inference: the semantic blocks are measured by their own benchmarks. Besides wall-clock
MS/s (which other work on a shared machine depresses) it reports the CPU the run used, per thread
(Linux /proc): `msps_2core` = samples / max(busiest thread's CPU s, all threads' CPU s / 2), the
throughput two otherwise idle cores would sustain.

    .venv/bin/python scripts/bench_waveform.py [--frames 2000] [--rate 16] [--images-per-frame N]
        [--json OUT]

(`--frames` counts images: the payloads sent.)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from rkdsc_gr._pdu import make_pdu
from rkdsc_gr._polling import wait_until
from rkdsc_gr.ota_channel import ota_channel
from rkdsc_gr.ota_loopback import received_all
from rkdsc_gr.ota_rx import ota_rx
from rkdsc_gr.ota_tx import ota_tx

PORT_IN = pmt.intern("in")
SPS = 4  # set from --sps
N_IMG = 1  # set from --images-per-frame


def make_tx(n_pdus: int):
    return ota_tx(sps=SPS, max_queue=n_pdus + 16, images_per_frame=N_IMG, flush_s=3600.0)


def payloads(n: int, k: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = (rng.normal(size=k) + 1j * rng.normal(size=k)).astype(np.complex64)
        p /= np.sqrt(np.mean(np.abs(p) ** 2))
        meta = pmt.dict_add(pmt.make_dict(), pmt.intern("index"), pmt.from_long(i))
        out.append(make_pdu(meta, p.astype(np.complex64)))
    return out


def thread_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds (user + system) of each thread of this process (Linux; {} elsewhere)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            out[(int(tid), name)] = (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return {}
    return out


class CpuMeter:
    """CPU used by each thread between start() and stop(); `msps_2core(samples)`."""

    def start(self) -> None:
        self.t0 = thread_cpu()

    def stop(self) -> dict:
        t1 = thread_cpu()
        used = {t: c - self.t0.get(t, 0.0) for t, c in t1.items()}
        total, busiest = sum(used.values()), max(used.values(), default=0.0)
        top = sorted(used.items(), key=lambda kv: -kv[1])[:4]
        return {
            "cpu_s": total,
            "busiest_thread_cpu_s": busiest,
            "top_threads": {f"{name}/{tid}": round(c, 2) for (tid, name), c in top},
        }


def capacity(samples: int, cpu: dict) -> float | None:
    bound = max(cpu["busiest_thread_cpu_s"], cpu["cpu_s"] / 2)
    return samples / bound / 1e6 if bound > 0 else None


def measure(tb, feed, done, samples) -> dict:
    """Start `tb`, call `feed()`, poll `done()` (deadline 600 s); wall and CPU figures."""
    meter = CpuMeter()
    tb.start()
    meter.start()
    t0 = time.perf_counter()
    feed()
    ok = wait_until(done, 600, 0.005)
    dt = time.perf_counter() - t0
    cpu = meter.stop()
    tb.stop()
    tb.wait()
    n = samples()
    return {
        "ok": ok,
        "samples": n,
        "seconds": dt,
        "msps": n / dt / 1e6,
        **cpu,
        "msps_2core": capacity(n, cpu),
    }


def post_all(tx, pdus: list):
    def feed() -> None:
        for pdu in pdus:
            tx.framer.to_basic_block()._post(PORT_IN, pdu)
        tx.flush()

    return feed


def bench_tx(pdus: list) -> dict:
    tb = gr.top_block()
    tx = make_tx(len(pdus))
    sink = blocks.null_sink(gr.sizeof_gr_complex)
    tb.connect(tx, sink)
    return measure(
        tb,
        post_all(tx, pdus),
        lambda: tx.images_sent() == len(pdus) and sink.nitems_read(0) >= tx.samples_sent(),
        tx.samples_sent,
    )


def recorded(tx, ppm: float = 50.0) -> int:
    """Samples out of ota_channel once all but its hold-back came through (+50 ppm shortens)."""
    return int(tx.samples_sent() * (1 - ppm * 1e-6)) - 16


def record(pdus: list, snr_db: float) -> np.ndarray:
    """The impaired stream the rx benchmark replays (made once, not timed)."""
    tb = gr.top_block()
    tx = make_tx(len(pdus))
    chan = ota_channel(snr_db, 1e-3, 50.0, seed=1, sps=SPS)
    sink = blocks.vector_sink_c()
    tb.connect(tx, chan, sink)
    tb.start()
    post_all(tx, pdus)()
    # +50 ppm: the channel's output is shorter by 50e-6 of its input; the idle tail covers that
    wait_until(lambda: tx.images_sent() == len(pdus) and sink.nitems_read(0) >= recorded(tx), 600)
    tb.stop()
    tb.wait()
    return np.asarray(sink.data(), dtype=np.complex64)


def bench_rx(samples: np.ndarray, frames: int) -> dict:
    tb = gr.top_block()
    src = blocks.vector_source_c(samples, True)  # repeats: threads stay alive to be measured
    rx = ota_rx(sps=SPS)
    tb.connect(src, rx)
    out = measure(
        tb,
        lambda: None,
        lambda: rx.deframer.nitems_read(0) >= len(samples) - 1024,
        lambda: len(samples),
    )
    return {**out, "frames": rx.images_received(), "of": frames}


def bench_chain(pdus: list, snr_db: float) -> dict:
    tb = gr.top_block()
    tx = make_tx(len(pdus))
    chan = ota_channel(snr_db, 1e-3, 50.0, seed=2, sps=SPS)
    rx = ota_rx(sps=SPS)
    tb.connect(tx, chan, rx)
    out = measure(
        tb,
        post_all(tx, pdus),
        lambda: tx.images_sent() == len(pdus) and received_all(tx, rx, 50.0),
        tx.samples_sent,
    )
    out["images_per_s"] = len(pdus) / out["seconds"]
    return {**out, "frames": rx.images_received(), "of": len(pdus)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--rate", type=int, default=16)
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--sps", type=int, default=4, help="samples per symbol (even)")
    ap.add_argument("--images-per-frame", type=int, default=1, help="N images per frame")
    ap.add_argument("--cores", type=int, default=2, help="CPU affinity limit (0 = leave as is)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
    global SPS, N_IMG
    SPS, N_IMG = args.sps, args.images_per_frame
    pdus = payloads(args.frames, args.rate)
    out = {
        "sps": args.sps,
        "frames": args.frames,
        "rate": args.rate,
        "images_per_frame": args.images_per_frame,
        "snr_db": args.snr,
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg": os.getloadavg(),
    }
    out["tx"] = bench_tx(pdus)
    out["rx"] = bench_rx(record(pdus, args.snr), args.frames)
    out["chain"] = bench_chain(pdus, args.snr)
    for name in ("tx", "rx", "chain"):
        r = out[name]
        frames = f", {r['frames']}/{r['of']} images" if "frames" in r else ""
        print(
            f"{name:>5}: {r['msps']:6.2f} MS/s wall, {r['msps_2core']:6.2f} MS/s on 2 idle cores"
            f" (CPU {r['cpu_s']:.2f} s, busiest thread {r['busiest_thread_cpu_s']:.2f} s;"
            f" {r['samples']} samples in {r['seconds']:.2f} s{frames})"
        )
    if args.json:
        from rkdsc_core.provenance import provenance

        out["provenance"] = provenance(config=vars(args), seed=0)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
