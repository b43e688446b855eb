"""GNU Radio part of `rkdsc bench`: end-to-end flowgraph throughput of the symbol-level loopback
(images/s) and of the waveform loopback (images/s and MS/s of IQ), model inference included."""

from __future__ import annotations

import time

from rkdsc_core.phy.config import FrameConfig
from rkdsc_gr.loopback import run_loopback
from rkdsc_gr.loopback_report import LoopbackRequest
from rkdsc_gr.ota_loopback import run_waveform_loopback


def gr_bench(bundle: str, n: int = 2000, rate: int = 16) -> dict:
    t0 = time.perf_counter()
    run_loopback(bundle, "awgn", [10.0], rate, n)
    t_sym = time.perf_counter() - t0
    n_wave = max(1, n // 4)
    t0 = time.perf_counter()
    rep = run_waveform_loopback(LoopbackRequest(bundle, "awgn", (10.0,), rate, n_wave))
    t_wave = time.perf_counter() - t0
    samples = rep["points"][0]["frames_sent"] * FrameConfig().burst_samples(rate)
    return {
        "symbol_loopback_images_per_s": n / t_sym,
        "symbol_loopback_n": n,
        "waveform_loopback_images_per_s": n_wave / t_wave,
        "waveform_loopback_msps": samples / t_wave / 1e6,
        "waveform_loopback_n": n_wave,
        "note": "wall clock incl. graph start-up, data loading and model inference",
    }
