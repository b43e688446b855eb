"""The non-coherent pre-detector: where a preamble may start, cheaply (a few numpy passes per
sample), before `FrameReceiver.acquire` decides coherently. Offline (`scan`) and streaming
(`rkdsc_gr.ota_rx`, which feeds it GNU Radio's correlator output) use the same grouping."""

from __future__ import annotations

import numpy as np

from rkdsc_core.phy.config import FrameConfig
from rkdsc_core.phy.sync import prescreen_metric, repetition_correlation


class Detector:
    """Non-coherent pre-detector over a whole stream: finds the local maxima of `prescreen_metric`
    above `threshold` (in units of its noise level 1/L), at most one per preamble length. Cheap
    (a few numpy passes per sample); `FrameReceiver.acquire` then decides coherently.

    With R = 16 repetitions the noise-only metric has relative spread 1/4; at the default 2.3× the
    noise level, noise gives ~12 hits per 10^6 samples (each costs one coherent check), while the
    1st percentile of −10 dB preambles behind the acceptance test's 3-tap channel (CFO 1e-3) sits
    at 2.56 (150 frames; tests/core/test_phy_receiver.py checks both at smaller n).
    """

    def __init__(self, cfg: FrameConfig, threshold: float = 2.3) -> None:
        self.cfg = cfg
        self.threshold = float(threshold) / cfg.zc_length
        self.step = cfg.zc_length * cfg.sps
        self.span = cfg.preamble_reps * self.step

    def hits(self, metric: np.ndarray, base: int = 0) -> np.ndarray:
        """Starts (base + index, int64) of the metric's peaks above the threshold: each the
        maximum within ± one repetition."""
        above = np.flatnonzero(metric >= self.threshold)
        if len(above) == 0:
            return above.astype(np.int64)
        # groups of indices closer than a repetition; the maximum of each group
        breaks = np.flatnonzero(np.diff(above) > self.step) + 1
        out = []
        for grp in np.split(above, breaks):
            out.append(grp[np.argmax(metric[grp])])
        return base + np.asarray(out, dtype=np.int64)

    def scan(self, z: np.ndarray) -> np.ndarray:
        """Hits over a whole capture of matched-filter output (offline), int64 sorted."""
        cfg = self.cfg
        corr = repetition_correlation(z, cfg.zc_length, cfg.sps)
        count = len(z) - self.span - 1
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        csum = np.concatenate([[0.0], np.cumsum(np.abs(z) ** 2)])
        metric = prescreen_metric(
            corr,
            csum,
            min(count, len(corr) - self.span + self.step),
            cfg.sps,
            cfg.zc_length,
            cfg.preamble_reps,
        )
        return self.hits(metric)
