"""The frame receiver on matched-filter output: timing and coarse CFO from the preamble, a
T/2-spaced equaliser trained on it, residual frequency and gain from pilots, header decoding, then
(with the header known) a data-aided noise estimate and MMSE equalisation of the K payload symbols.

Two steps so that a streaming receiver can wait for just enough samples: `acquire` needs the
samples through the header section, `finish` those through the payload section of the announced K.
The SNR handed on (`RxFrame.snr_db`) is the *estimated* effective Es/N0 of the equalised symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rkdsc_core.channels import (
    db_to_linear,
    linear_to_db,
    lmmse_estimate,
    mmse_equalize,
)
from rkdsc_core.phy.config import FrameConfig
from rkdsc_core.phy.header import Header, decode_header, encode_header
from rkdsc_core.phy.preamble import preamble_symbols
from rkdsc_core.phy.sync import (
    block_noise,
    fse_matrix,
    fse_offsets,
    preamble_metric,
    residual_frequency,
    train_fse,
)


class FrameRejected(Exception):
    """A candidate that is not a good frame; `reason` is one of REASONS."""

    REASONS = ("short", "no_preamble", "header_crc", "rate")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Acquisition:
    """State after `acquire`: timing `tau` (index of preamble symbol 0 in z), preamble `metric`,
    coarse `cfo` (cycles/sample), equaliser `w`, decoded `header`, and the equalised header section
    `y_header` complex128 [header section length] (coarse CFO removed, residual ramp not), and
    the residual frequency `nu` (cycles/symbol) the header pilots show."""

    tau: int
    metric: float
    cfo: float
    w: np.ndarray
    header: Header
    y_header: np.ndarray
    nu: float = 0.0


@dataclass
class RxFrame:
    """A received frame.

    Attributes:
        header: the decoded header (K = header.rate).
        symbols: equalised payload, complex64 [K], unbiased (E[x̂ | x] = x).
        snr_db: estimated effective Es/N0 of `symbols` (the mean over the K symbols, linear).
        eff_snr_db: per-symbol effective SNR, float32 [K].
        cfo: estimated carrier offset, cycles per sample.
        tau: index of the first preamble symbol's peak in the matched-filter output.
        burst_start: index of the burst's first sample in the receiver input (same indexing).
        metric: preamble metric at `tau` (≈ SNR / (1 + SNR)).
        noise_var: estimated noise variance at the equaliser output (unit-power symbols).
    """

    header: Header
    symbols: np.ndarray
    snr_db: float
    eff_snr_db: np.ndarray
    cfo: float
    tau: int
    burst_start: int
    metric: float
    noise_var: float


class FrameReceiver:
    """Receives frames of one `FrameConfig` from matched-filter output z (complex, 1-D; the receive
    filter is `pulse.matched_filter` or GNU Radio's `fir_filter_ccf` with the same taps).

    Args:
        cfg: the waveform.
        eq_taps: T/2-spaced equaliser taps (odd); 7 spans ±1.5 symbols of timing error + multipath.
        min_metric: preamble metric below which a candidate is rejected (0.2 ≈ −6 dB SNR).
        doppler: normalised Doppler f_D·T_s per symbol assumed when tracking the gain through the
            frame; 0 treats the channel as constant over a frame (block LS over all known symbols).
        max_rate: largest K accepted from a header.
        ridge: equaliser regularisation (see `train_fse`).
    """

    def __init__(
        self,
        cfg: FrameConfig | None = None,
        eq_taps: int = 7,
        min_metric: float = 0.2,
        doppler: float = 0.0,
        max_rate: int = 4095,
        ridge: float = 1e-3,
    ) -> None:
        self.cfg = cfg or FrameConfig()
        if not 0.0 <= doppler < 0.5:
            raise ValueError(f"doppler must be in [0, 0.5) cycles per symbol, got {doppler}")
        if not 0.0 < min_metric < 1.0:
            raise ValueError(f"min_metric must be in (0, 1), got {min_metric}")
        self.offsets = fse_offsets(self.cfg.sps, eq_taps)
        self.min_metric = float(min_metric)
        self.doppler = float(doppler)
        self.max_rate = int(max_rate)
        self.ridge = float(ridge)
        # residual CFO searched after the preamble's estimate, cycles/symbol: > 6σ of that estimate
        # at 0 dB (σ ≈ 6e-4 cycles/symbol with the default preamble)
        self.max_freq = 4e-3
        cfg = self.cfg
        self._pre = preamble_symbols(cfg.zc_length, cfg.preamble_reps)
        self._hdr = cfg.header_layout
        self._hdr_start = cfg.preamble_len  # frame symbol index of the header section
        self._pay_start = cfg.preamble_len + self._hdr.length

    # --- how many samples each step needs, relative to tau ------------------------------------
    @property
    def lead(self) -> int:
        """Samples needed before tau."""
        return int(-self.offsets[0])

    def span_through(self, symbols: int) -> int:
        """Samples needed from tau on to equalise the first `symbols` frame symbols."""
        return (symbols - 1) * self.cfg.sps + int(self.offsets[-1]) + 1

    @property
    def acquire_span(self) -> int:
        return self.span_through(self._pay_start)

    def frame_span(self, rate: int) -> int:
        return self.span_through(self.cfg.frame_symbols(rate))

    def burst_start(self, tau: int) -> int:
        """Index of the burst's first sample for a frame whose preamble peaks at `tau`."""
        return tau - self.cfg.guard - (self.cfg.rrc_taps - 1)

    # --- the two steps ------------------------------------------------------------------------
    def _segment(self, z: np.ndarray, tau: int, cfo: float, k0: int, k1: int) -> np.ndarray:
        """z around frame symbols k0..k1−1 with the coarse CFO removed (phase 0 at tau)."""
        start = tau + k0 * self.cfg.sps - self.lead
        stop = tau + (k1 - 1) * self.cfg.sps + int(self.offsets[-1]) + 1
        n = np.arange(start - tau, stop - tau)
        return z[start:stop] * np.exp(-2j * np.pi * cfo * n)

    def _equalise(self, seg: np.ndarray, count: int, w: np.ndarray) -> np.ndarray:
        starts = np.arange(count) * self.cfg.sps + self.lead
        return np.sum(fse_matrix(seg, starts, self.offsets) * w, axis=1)  # no BLAS: see sync.py

    def candidates(self, hint: int, width: int | None = None) -> np.ndarray:
        """Starts to search around a detector hit at `hint`, int64: ±width samples (default sps)
        around it and around hint − L·sps, because a detector correlating with the first two
        repetitions (`preamble.detection_template`) peaks as strongly one repetition late."""
        cfg = self.cfg
        w = cfg.sps if width is None else int(width)
        near = np.arange(-w, w + 1)
        return np.concatenate([hint - cfg.zc_length * cfg.sps + near, hint + near])

    def acquire(self, z: np.ndarray, taus: np.ndarray) -> Acquisition:
        """Pick the best preamble start among `taus`, train the equaliser, decode the header.

        Candidates without z[tau − lead] … z[tau + acquire_span − 1] are skipped. Raises
        FrameRejected ("short", "no_preamble", "header_crc", "rate").
        """
        cfg = self.cfg
        taus = np.asarray(taus, dtype=np.int64)
        taus = taus[(taus >= self.lead) & (taus + self.acquire_span <= len(z))]
        if len(taus) == 0:
            raise FrameRejected("short", f"{len(z)} samples do not cover the header section")
        metric, d = preamble_metric(z, taus, cfg.sps, cfg.zc_length, cfg.preamble_reps)
        i = int(np.argmax(metric))
        if metric[i] < self.min_metric:
            raise FrameRejected("no_preamble", f"metric {metric[i]:.3f} < {self.min_metric}")
        tau = int(taus[i])
        cfo = float(np.angle(d[i]) / (2 * np.pi * cfg.zc_length * cfg.sps))
        seg = self._segment(z, tau, cfo, 0, self._pay_start)
        starts = np.arange(cfg.preamble_len) * cfg.sps + self.lead
        w, n0 = train_fse(fse_matrix(seg, starts, self.offsets), self._pre, self.ridge)
        y_hdr = self._equalise(seg, self._pay_start, w)[self._hdr_start :]

        hl = self._hdr
        pos = self._hdr_start + hl.pilots
        u = y_hdr[hl.pilots] * hl.pilot_values.conj()
        nu, amp = residual_frequency(u, pos, self.max_freq)
        y = y_hdr * np.exp(-2j * np.pi * nu * (self._hdr_start + np.arange(hl.length)))
        if self.doppler == 0.0:
            g = amp  # the ML phase/amplitude at ν: block LS of the de-ramped pilots (scale unused)
        else:
            # (copies: the cached layout arrays are read-only, which torch warns about)
            g = lmmse_estimate(
                y[None, hl.pilots],
                hl.pilot_values.copy(),
                hl.pilots.copy(),
                hl.data.copy(),
                max(n0, 1e-12),
                self.doppler,
            )[0][0]
        header = decode_header(np.real(y[hl.data] * np.conj(g)))
        if header is None:
            raise FrameRejected("header_crc")
        if header.rate > self.max_rate:
            raise FrameRejected("rate", f"K={header.rate} > {self.max_rate}")
        return Acquisition(tau, float(metric[i]), cfo, w, header, y_hdr, nu)

    def finish(self, z: np.ndarray, acq: Acquisition) -> RxFrame:
        """Equalise the payload of an acquired frame; needs z through tau + frame_span(K) − 1."""
        cfg, hl = self.cfg, self._hdr
        k = acq.header.rate
        pl = cfg.payload_layout(k)
        if acq.tau + self.frame_span(k) > len(z):
            raise FrameRejected("short", f"payload of K={k} runs past the {len(z)} samples")
        seg = self._segment(z, acq.tau, acq.cfo, self._pay_start, self._pay_start + pl.length)
        y_pay = self._equalise(seg, pl.length, acq.w)

        # every header-section symbol is known now: blocks of them act as strong pilots
        known = np.empty(hl.length, dtype=np.complex128)
        known[hl.data] = encode_header(acq.header)
        known[hl.pilots] = hl.pilot_values
        starts = np.arange(0, hl.length, cfg.pilot_spacing)
        counts = np.diff(np.append(starts, hl.length))
        block_sum = np.add.reduceat(acq.y_header * known.conj(), starts)
        block_pos = self._hdr_start + starts + (counts - 1) / 2
        pay_pos = self._pay_start + pl.pilots
        u_pay = y_pay[pl.pilots] * pl.pilot_values.conj()
        # refine the header pilots' estimate: a few grid points around it
        nu, amp = residual_frequency(
            np.concatenate([block_sum, u_pay]),
            np.concatenate([block_pos, pay_pos]),
            max_freq=2.0 / (pay_pos[-1] - block_pos[0]),
            centre=acq.nu,
        )
        y_hdr = acq.y_header * np.exp(-2j * np.pi * nu * (self._hdr_start + np.arange(hl.length)))
        y_pay = y_pay * np.exp(-2j * np.pi * nu * (self._pay_start + np.arange(pl.length)))
        n0 = max(block_noise(y_hdr * known.conj(), starts), 1e-12)

        if self.doppler == 0.0:
            # block LS over every known symbol (the ML amplitude at ν; |known| = 1)
            n_known = hl.length + len(pl.pilots)
            g = np.array([[amp / n_known]])
            err = n0 / n_known
        else:
            sums = np.add.reduceat(y_hdr * known.conj(), starts)
            ys = np.concatenate([sums / np.sqrt(counts), y_pay[pl.pilots]])[None]
            ps = np.concatenate([np.sqrt(counts), pl.pilot_values]).astype(np.complex128)
            idx = np.concatenate([np.round(block_pos).astype(np.int64), pay_pos])  # increasing
            g, err = lmmse_estimate(ys, ps, idx, self._pay_start + pl.data, n0, self.doppler)
        x_hat, eff = mmse_equalize(y_pay[None, pl.data], g, n0, err)
        eff = np.asarray(eff[0], dtype=np.float64)
        return RxFrame(
            header=acq.header,
            symbols=x_hat[0].astype(np.complex64),
            snr_db=float(linear_to_db(float(np.mean(db_to_linear(eff))))),
            eff_snr_db=eff.astype(np.float32),
            cfo=acq.cfo + nu / cfg.sps,
            tau=acq.tau,
            burst_start=self.burst_start(acq.tau),
            metric=acq.metric,
            noise_var=n0,
        )

    # --- offline use --------------------------------------------------------------------------
    def receive(self, z: np.ndarray, lo: int | None = None, hi: int | None = None) -> RxFrame:
        """`acquire` then `finish`: one frame whose preamble starts in [lo, hi) (all of z by
        default). Raises FrameRejected."""
        lo = self.lead if lo is None else lo
        hi = len(z) if hi is None else hi
        return self.finish(z, self.acquire(z, np.arange(lo, hi)))

    def find_frames(self, z: np.ndarray, chunk: int = 4096) -> list[RxFrame]:
        """Every frame in a capture z (matched-filter output), in order; rejected candidates are
        skipped. For tests and offline replays: streaming receivers use `acquire`/`finish`."""
        cfg = self.cfg
        last = len(z) - self.acquire_span + 1
        frames: list[RxFrame] = []
        pos = self.lead
        while pos < last:
            stop = min(pos + chunk, last)
            taus = np.arange(pos, stop)
            metric, _ = preamble_metric(z, taus, cfg.sps, cfg.zc_length, cfg.preamble_reps)
            above = np.flatnonzero(metric >= self.min_metric)
            if len(above) == 0:
                pos = stop
                continue
            tau = pos + int(above[0])
            window = cfg.preamble_len * cfg.sps // cfg.preamble_reps
            try:
                frame = self.receive(z, tau, tau + window)
            except FrameRejected:
                pos = tau + window
                continue
            frames.append(frame)
            pos = frame.tau + self.frame_span(frame.header.rate)
        return frames
