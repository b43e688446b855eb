"""Benchmark (not a test): symbol-level loopback throughput in images/s, pinned to N cores.

Runs the `rkdsc loopback --phy symbol` flowgraph (image_source → semantic_tx → symbol_channel →
semantic_rx → accuracy_sink) on n images and reports, per channel:
  - `images_per_s`: n / (flowgraph start → last decision), start-up included (wall clock);
  - `steady_images_per_s`: decisions per second between the first and the last decision;
  - `cpu_s`, `images_per_cpu_s`: this process's CPU time (all threads) over the run, and n / it;
    on a machine shared with other jobs wall-clock figures fall, this one much less;
  - `load_avg`: os.getloadavg() after the run (1, 5, 15 min; the CPUs busy, this run included);
Each figure follows a warm-up encode/decode of 256 images (torch's first calls set up kernels: a
cost a long-running graph pays once). And once:
  - `model_images_per_s` (+ `model_images_per_cpu_s`): encode + decode alone, numpy runtime,
    batches of 256 (no GNU Radio), best of 3;
  - `graph_only_images_per_s` (+ per CPU-second): the flowgraph with the model replaced by a stub
    (GNU Radio + PDU overhead alone).
The JSON is rewritten after every stage, so an interrupted run leaves what it measured.

Usage: .venv/bin/python scripts/bench_loopback.py [--bundle default|DIR|tiny] [--n 5000]
       [--cores 2] [--rate 16] [--channels awgn,rayleigh] [--json results/bench_loopback.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def pin(cores: int) -> list[int]:
    """Restrict this process (and the threads it starts) to its first `cores` CPUs."""
    import torch

    avail = sorted(os.sched_getaffinity(0))
    use = avail[:cores]
    os.sched_setaffinity(0, use)
    torch.set_num_threads(len(use))
    return use


def model_throughput(
    bundle: str, images: np.ndarray, rate: int, batch: int = 256, repeats: int = 3
) -> tuple[float, float]:
    """(images/s, images per CPU-second), each the best of `repeats` passes (the machine may be
    shared: the best is the least disturbed)."""
    from rkdsc_core.runtime import load_bundle

    bun = load_bundle(bundle)
    tx, rx = bun.transmitter(rate), bun.receiver()
    tx.encode(images[:batch])  # warm-up
    best = best_cpu = 0.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(images), batch):
            y = tx.encode(images[i : i + batch])
            rx.classify(y, np.full(len(y), 10.0, np.float32), csi=np.ones(len(y), np.complex64))
        best = max(best, len(images) / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, len(images) / (time.process_time() - c0))
    return best, best_cpu


def graph_throughput(bundle: str, dataset: str, n: int, channel: str, rate: int) -> dict:
    from rkdsc_gr.loopback import build_symbol_loopback, run_graph
    from rkdsc_gr.loopback_report import LoopbackRequest

    req = LoopbackRequest(bundle, channel, (10.0,), rate, n, "test")
    lb = build_symbol_loopback(req, dataset, 10.0, 0)
    c0 = time.process_time()
    point = run_graph(lb, n, timeout_s=60 + n / 50)
    cpu = time.process_time() - c0
    stats = lb.sink.stats()
    return {
        "images_per_s": point["images_per_s"],
        "steady_images_per_s": stats["decisions_per_s"],
        "cpu_s": cpu,
        "images_per_cpu_s": point["frames_detected"] / cpu if cpu > 0 else None,
        "frames": f"{point['frames_detected']}/{point['frames_sent']}",
        "accuracy": point["accuracy"],
        "load_avg": os.getloadavg(),
    }


def stub_model() -> None:
    """Replace encode/decode by constant outputs (measures everything but the model)."""
    from rkdsc_core.runtime import Receiver, Transmitter

    Transmitter.encode = lambda self, images, snr_db=None: np.ones(
        (len(images), self.rate), np.complex64
    )
    Receiver.classify = lambda self, y, snr, csi=None: (
        np.zeros(len(y), np.int64),
        np.zeros((len(y), len(self.bundle.classes)), np.float32),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bundle", default="default", help="'default', a folder, or 'tiny'")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rate", type=int, default=16)
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cpus = pin(args.cores)
    bundle = args.bundle
    if bundle == "tiny":
        from rkdsc_core.testing import make_tiny_bundle

        bundle = str(make_tiny_bundle(Path(tempfile.mkdtemp()) / "tiny"))
    import torch

    from rkdsc_core.bundle import bundle_ref
    from rkdsc_core.data.datasets import load_dataset
    from rkdsc_core.provenance import provenance
    from rkdsc_core.runtime import load_bundle

    bun = load_bundle(bundle)
    dataset = bun.manifest["dataset"]["name"]
    images = load_dataset(dataset, "test", limit=args.n).images
    rep = {
        "bundle": bundle_ref(bun.path),
        "bundle_name": bun.manifest.get("name"),
        "bundle_date": bun.manifest.get("provenance", {}).get("date"),
        "student_params": bun.manifest.get("student", {}).get("params"),
        "n": len(images),
        "rate": args.rate,
        "cpus": cpus,
        "torch_threads": torch.get_num_threads(),
        "env": {k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "cpu_model": platform.processor() or platform.machine(),
        "machine_cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "channels": {},
        "provenance": provenance(
            config={"n": args.n, "cores": args.cores, "rate": args.rate, "channels": args.channels},
            command=" ".join(["scripts/bench_loopback.py", *sys.argv[1:]]),
        ),
    }

    def save() -> None:
        print(json.dumps(rep), flush=True)
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(json.dumps(rep, indent=2) + "\n")
            tmp.replace(out)

    # warm-up (first torch calls set up kernels): what a long-running graph pays once
    y = bun.transmitter(args.rate).encode(images[:256])
    bun.receiver().classify(y, np.full(len(y), 10.0, np.float32))
    for ch in args.channels.split(","):
        rep["channels"][ch] = graph_throughput(bundle, dataset, len(images), ch, args.rate)
        save()
    rep["model_images_per_s"], rep["model_images_per_cpu_s"] = model_throughput(
        bundle, images, args.rate
    )
    save()
    stub_model()
    stub = graph_throughput(bundle, dataset, len(images), "rayleigh", args.rate)
    rep["graph_only_images_per_s"] = stub["steady_images_per_s"]
    rep["graph_only_images_per_cpu_s"] = stub["images_per_cpu_s"]
    rep["load_avg_at_end"] = os.getloadavg()
    save()


if __name__ == "__main__":
    main()
