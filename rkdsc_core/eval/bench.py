"""`rkdsc bench`: model sizes, FLOPs, latency and throughput of the bundle's parts, and the
student-versus-teacher speed ratio measured side by side in one run (CPU, current threads)."""

from __future__ import annotations

import time

import numpy as np
import torch

from rkdsc_core.runtime import Bundle
from rkdsc_core.torch_utils import count_params


def _time(fn, repeat: int, min_time: float = 0.3) -> float:
    """Median seconds per call of `fn` over `repeat` timed rounds (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t0 >= min_time / repeat:
                break
        times.append((time.perf_counter() - t0) / n)
    return float(np.median(times))


def model_bench(bundle: Bundle, batch_sizes=(1, 16, 128), repeat: int = 3) -> dict:
    """Per-image latency (batch 1) and images/s per batch size of encoder (student + CAT encode),
    decoder (CAT decode + head), student alone and teacher alone."""
    from rkdsc_core.eval.sizes import model_flops

    h, w, c = bundle.image_shape
    k = 16 if 16 in bundle.rates else bundle.rates[-1]
    tx, rx = bundle.transmitter(k), bundle.receiver()
    rng = np.random.default_rng(0)
    out: dict = {
        "params": {
            "teacher": count_params(bundle.teacher),
            "student": count_params(bundle.student),
            "cat": count_params(bundle.cat),
            "head": count_params(bundle.head),
        },
        "flops_per_image": model_flops(bundle),
        "rate": k,
        "torch_threads": torch.get_num_threads(),
        "batches": [],
    }
    for b in batch_sizes:
        imgs = rng.integers(0, 256, (b, h, w, c), dtype=np.uint8)
        sym = tx.encode(imgs)
        x = torch.randn(b, c, h, w)
        with torch.inference_mode():
            t_enc = _time(lambda imgs=imgs: tx.encode(imgs), repeat)
            t_dec = _time(lambda sym=sym: rx.decode(sym, 10.0), repeat)
            t_stu = _time(lambda x=x: bundle.student(x), repeat)
            t_tea = _time(lambda x=x: bundle.teacher.logits(x), repeat)
        out["batches"].append(
            {
                "batch": b,
                "encoder_images_per_s": b / t_enc,
                "decoder_images_per_s": b / t_dec,
                "student_images_per_s": b / t_stu,
                "teacher_images_per_s": b / t_tea,
                "student_speedup_vs_teacher": t_tea / t_stu,
                "encoder_latency_ms": 1e3 * t_enc / b if b == 1 else None,
                "decoder_latency_ms": 1e3 * t_dec / b if b == 1 else None,
            }
        )
    return out
