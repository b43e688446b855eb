"""The frame receiver on matched-filter output: timing and coarse CFO from the preamble, a
T/2-spaced equaliser trained on it, residual frequency and gain from the preamble and header pilots,
polar header decoding, then (with the header known) the sample-clock drift over the frame, a
data-aided noise estimate and MMSE equalisation of the N·K payload symbols.

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
from rkdsc_core.phy.detect import Detector
from rkdsc_core.phy.header import MAX_IMAGES, MAX_RATE, Header, decode_header, encode_header
from rkdsc_core.phy.preamble import preamble_symbols
from rkdsc_core.phy.sync import (
    block_noise,
    cubic_at,
    fse_offsets,
    fse_rows,
    fse_stream,
    preamble_metric,
    residual_frequency,
    sco_search,
    train_fse,
)


class FrameRejected(Exception):
    """A candidate that is not a good frame; `reason` is one of REASONS."""

    REASONS = ("short", "no_preamble", "header_crc", "rate", "n_images")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Acquisition:
    """State after `acquire`: timing `tau` (index of preamble symbol 0 in z), preamble `metric`,
    coarse `cfo` (cycles/sample), equaliser `w`, decoded `header`, the equalised header section
    `y_header` complex128 [header section length] (coarse CFO removed, residual ramp not), and
    the residual frequency `nu` (cycles/symbol) the preamble and header pilots show."""

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
        header: the decoded header (K = header.rate, N = header.images).
        symbols: equalised payload, complex64 [N, K] (image i is row i), unbiased (E[x̂ | x] = x).
        snr_db: estimated effective Es/N0 of `symbols` (the mean over the frame, linear).
        eff_snr_db: per-symbol effective SNR, float32 [N, K].
        cfo: estimated carrier offset, cycles per sample.
        tau: index of the first preamble symbol's peak in the matched-filter output.
        burst_start: index of the burst's first sample in the receiver input (same indexing).
        metric: preamble metric at `tau` (≈ SNR / (1 + SNR)).
        noise_var: estimated noise variance at the equaliser output (unit-power symbols).
        sco: estimated sample-clock offset (relative, e.g. 5e-5 for +50 ppm); 0 when the frame is
            too short for it to matter.
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
    sco: float = 0.0

    def image_snr_db(self) -> np.ndarray:
        """Estimated effective SNR of each image (linear mean over its K symbols), float64 [N]."""
        return linear_to_db(np.mean(db_to_linear(self.eff_snr_db.astype(np.float64)), axis=1))


class FrameReceiver:
    """Receives frames of one `FrameConfig` from matched-filter output z (complex, 1-D; the receive
    filter is `pulse.matched_filter` or GNU Radio's `fir_filter_ccf` with the same taps).

    Args:
        cfg: the waveform.
        eq_taps: T/2-spaced equaliser taps (odd); 7 spans ±1.5 symbols of timing error + multipath.
        min_metric: preamble metric below which a candidate is rejected. The metric is about
            SNR / (1 + SNR) on a preamble and 1 / (R·L) (≈ 0.002) on noise; the default 0.045
            sits below the 1st percentile of −10 dB frames behind a 3-tap channel (0.055) and
            above the largest value noise reached over 10^4 pre-detector hits (0.034).
        doppler: normalised Doppler f_D·T_s per symbol assumed when tracking the gain through the
            frame; 0 treats the channel as constant over a frame (block LS over all known symbols).
        max_rate: largest K accepted from a header (a bundle's k_max).
        max_images: largest N accepted from a header.
        ridge: equaliser regularisation (see `train_fse`).
        max_sco_ppm: largest sample-clock offset searched over a frame (parts per million).
    """

    def __init__(
        self,
        cfg: FrameConfig | None = None,
        eq_taps: int = 7,
        min_metric: float = 0.045,
        doppler: float = 0.0,
        max_rate: int = MAX_RATE,
        ridge: float = 1e-3,
        max_images: int = MAX_IMAGES,
        max_sco_ppm: float = 100.0,
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
        self.max_images = int(max_images)
        self.ridge = float(ridge)
        if not 0.0 <= max_sco_ppm < 1e4:
            raise ValueError(f"max_sco_ppm must be in [0, 10000), got {max_sco_ppm}")
        self.max_sco = float(max_sco_ppm) * 1e-6
        # residual CFO searched after the preamble's estimate, cycles/symbol: > 6σ of that estimate
        # at −10 dB (σ ≈ 1.1e-4 cycles/symbol with the default 512-symbol preamble)
        self.max_freq = 1e-3
        # frequencies (cycles/symbol, around the estimate) tried when a header fails its CRC
        self.freq_retries = (1.2e-4, -1.2e-4, 2.4e-4, -2.4e-4)
        cfg = self.cfg
        self._pre = preamble_symbols(cfg.zc_length, cfg.preamble_reps)
        self._hdr = cfg.header_layout
        self._hdr_start = cfg.preamble_len  # frame symbol index of the header section
        self._pay_start = cfg.preamble_len + self._hdr.length

    # --- how many samples each step needs, relative to tau ------------------------------------
    @property
    def lead(self) -> int:
        """Samples needed before tau (the equaliser's reach, +1 for the cubic interpolator)."""
        return int(-self.offsets[0]) + 1

    def span_through(self, symbols: int) -> int:
        """Samples needed from tau on to equalise the first `symbols` frame symbols."""
        return (symbols - 1) * self.cfg.sps + int(self.offsets[-1]) + 3  # +2: interpolator

    @property
    def acquire_span(self) -> int:
        return self.span_through(self._pay_start)

    def frame_span(self, rate: int, images: int = 1) -> int:
        """Samples needed from tau on for a whole frame, with room for the largest clock drift."""
        n = self.cfg.frame_symbols(rate, images)
        drift = int(np.ceil(self.max_sco * n * self.cfg.sps)) + 1
        return self.span_through(n) + drift

    def burst_start(self, tau: int) -> int:
        """Index of the burst's first sample for a frame whose preamble peaks at `tau`."""
        return tau - self.cfg.guard - (self.cfg.rrc_taps - 1)

    # --- the two steps ------------------------------------------------------------------------
    def candidates(self, hint: int, width: int | None = None) -> np.ndarray:
        """Starts to search around a `Detector` hit at `hint`, int64 sorted: ±width samples
        (default sps) around hint + r·L·sps for |r| < R, because the non-coherent pre-detector
        is nearly as high one or more repetitions off (it does not see the signs)."""
        cfg = self.cfg
        w = cfg.sps if width is None else int(width)
        reps = np.arange(-(cfg.preamble_reps - 1), cfg.preamble_reps) * cfg.zc_length * cfg.sps
        return (hint + reps[:, None] + np.arange(-w, w + 1)[None, :]).reshape(-1)

    def acquire(self, z: np.ndarray, taus: np.ndarray) -> Acquisition:
        """Pick the best preamble start among `taus`, train the equaliser, decode the header.

        Candidates without z[tau − lead] … z[tau + acquire_span − 1] are skipped. Raises
        FrameRejected ("short", "no_preamble", "header_crc", "rate", "n_images").
        """
        cfg = self.cfg
        taus = np.asarray(taus, dtype=np.int64)
        taus = taus[(taus >= self.lead) & (taus + self.acquire_span <= len(z))]
        if len(taus) == 0:
            raise FrameRejected("short", f"{len(z)} samples do not cover the header section")
        metric, cfos = preamble_metric(z, taus, cfg.sps, cfg.zc_length, cfg.preamble_reps)
        i = int(np.argmax(metric))
        if metric[i] < self.min_metric:
            raise FrameRejected("no_preamble", f"metric {metric[i]:.3f} < {self.min_metric}")
        tau, cfo = int(taus[i]), float(cfos[i])
        rows = fse_rows(z, tau, cfo, cfg.preamble_len, cfg.sps, self.offsets)
        w, n0 = train_fse(rows, self._pre, self.ridge)
        v = fse_stream(z, tau, cfo, w, self.offsets, 0, (self._pay_start - 1) * cfg.sps)
        y_all = v[:: cfg.sps]  # the symbol instants (no BLAS anywhere: see sync.py)
        y_hdr = y_all[self._hdr_start :]

        # residual frequency and gain from the preamble (in blocks) and the header pilots
        hl, step = self._hdr, cfg.pilot_spacing
        starts = np.arange(0, cfg.preamble_len, step)
        pre_sum = np.add.reduceat(y_all[: cfg.preamble_len] * self._pre.conj(), starts)
        pre_pos = starts + (np.diff(np.append(starts, cfg.preamble_len)) - 1) / 2
        u = y_hdr[hl.pilots] * hl.pilot_values.conj()
        pos = self._hdr_start + hl.pilots
        values, positions = np.concatenate([pre_sum, u]), np.concatenate([pre_pos, pos])
        nu, amp = residual_frequency(values, positions, self.max_freq)
        header, nu = self._decode_header(y_hdr, values, positions, nu, amp, n0)
        if header is None:
            raise FrameRejected("header_crc")
        if header.rate > self.max_rate:
            raise FrameRejected("rate", f"K={header.rate} > {self.max_rate}")
        if header.images > self.max_images:
            raise FrameRejected("n_images", f"N={header.images} > {self.max_images}")
        return Acquisition(tau, float(metric[i]), cfo, w, header, y_hdr, nu)

    def _decode_header(
        self,
        y_hdr: np.ndarray,
        values: np.ndarray,
        positions: np.ndarray,
        nu: float,
        amp: complex,
        n0: float,
    ) -> tuple[Header | None, float]:
        """Decode the header section at residual frequency ν (then at `freq_retries` around it when
        the CRC fails: a wrong frequency turns the far end of the header by tens of degrees at
        −10 dB, σ ≈ 1e-4 cycles/symbol from the preamble). Returns (header or None, the ν used)."""
        hl = self._hdr
        for delta in (0.0, *self.freq_retries):
            nu_try = nu + delta
            y = y_hdr * np.exp(-2j * np.pi * nu_try * (self._hdr_start + np.arange(hl.length)))
            if self.doppler == 0.0:
                # the ML phase at ν (its scale does not matter to the decoder)
                g = np.sum(values * np.exp(-2j * np.pi * nu_try * positions)) if delta else amp
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
            header = decode_header(y[hl.data] * np.conj(g))
            if header is not None:
                return header, nu_try
        return None, nu

    def _known_frame(self, header: Header) -> tuple[np.ndarray, np.ndarray]:
        """Positions (frame symbol indices, int64 [M]) and values (complex128 [M]) of every symbol
        known once the header is: preamble, the whole header section, payload pilots."""
        cfg, hl = self.cfg, self._hdr
        pl = cfg.payload_layout(header.rate, header.images)
        hdr = np.empty(hl.length, dtype=np.complex128)
        hdr[hl.data] = encode_header(header)
        hdr[hl.pilots] = hl.pilot_values
        pos = np.concatenate(
            [np.arange(self._pay_start), self._pay_start + pl.pilots.astype(np.int64)]
        )
        return pos, np.concatenate([self._pre, hdr, pl.pilot_values])

    def finish(self, z: np.ndarray, acq: Acquisition) -> RxFrame:
        """Equalise the payload of an acquired frame; needs z through
        tau + frame_span(K, N) − 1."""
        cfg, hl = self.cfg, self._hdr
        k, n_img = acq.header.rate, acq.header.images
        pl = cfg.payload_layout(k, n_img)
        if acq.tau + self.frame_span(k, n_img) > len(z):
            raise FrameRejected("short", f"payload of N={n_img}, K={k} runs past {len(z)} samples")
        known_pos, known_val = self._known_frame(acq.header)
        total = self._pay_start + pl.length
        first = 1  # one sample before tau: the cubic interpolator's reach (see `lead`)
        last = (total - 1) * cfg.sps + int(np.ceil(self.max_sco * total * cfg.sps)) + 2
        v = fse_stream(z, acq.tau, acq.cfo, acq.w, self.offsets, -first, last)
        sco = sco_search(v, first, known_pos, known_val, cfg.sps, self.max_sco, total)
        sym = np.arange(self._hdr_start, total, dtype=np.float64) * cfg.sps * (1.0 + sco)
        y_sec = cubic_at(v, first + sym)
        y_hdr, y_pay = y_sec[: hl.length], y_sec[hl.length :]

        # every header-section symbol is known now: blocks of them act as strong pilots
        known = known_val[self._hdr_start : self._pay_start]
        starts = np.arange(0, hl.length, cfg.pilot_spacing)
        counts = np.diff(np.append(starts, hl.length))
        block_sum = np.add.reduceat(y_hdr * known.conj(), starts)
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
        y_hdr = y_hdr * np.exp(-2j * np.pi * nu * (self._hdr_start + np.arange(hl.length)))
        y_pay = y_pay * np.exp(-2j * np.pi * nu * (self._pay_start + np.arange(pl.length)))
        n0 = max(block_noise(y_hdr * known.conj(), starts), 1e-12)

        if self.doppler == 0.0:
            # block LS over every known symbol (the ML amplitude at ν; |known| = 1), then the
            # unbiased one-tap MMSE of `mmse_equalize` written out for one gain (numpy, no torch
            # on the per-frame path)
            n_known = hl.length + len(pl.pilots)
            g = amp / n_known
            gain = abs(g) ** 2
            x_hat = y_pay[pl.data] * np.conj(g) / max(gain, 1e-30)
            eff_db = float(linear_to_db(gain / max(n0 + n0 / n_known, 1e-30)))
            return self._frame(acq, x_hat, np.full(len(x_hat), eff_db), nu, n0, sco)
        else:
            sums = np.add.reduceat(y_hdr * known.conj(), starts)
            ys = np.concatenate([sums / np.sqrt(counts), y_pay[pl.pilots]])[None]
            ps = np.concatenate([np.sqrt(counts), pl.pilot_values]).astype(np.complex128)
            idx = np.concatenate([np.round(block_pos).astype(np.int64), pay_pos])  # increasing
            g, err = lmmse_estimate(ys, ps, idx, self._pay_start + pl.data, n0, self.doppler)
        x_hat, eff = mmse_equalize(y_pay[None, pl.data], g, n0, err)
        return self._frame(acq, x_hat[0], np.asarray(eff[0], dtype=np.float64), nu, n0, sco)

    def _frame(
        self, acq: Acquisition, x_hat: np.ndarray, eff: np.ndarray, nu: float, n0: float, sco: float
    ) -> RxFrame:
        """The RxFrame of equalised payload `x_hat` [N·K] with per-symbol SNR `eff` (dB)."""
        n_img, k = acq.header.images, acq.header.rate
        return RxFrame(
            header=acq.header,
            symbols=x_hat.astype(np.complex64).reshape(n_img, k),
            snr_db=float(linear_to_db(float(np.mean(db_to_linear(eff))))),
            eff_snr_db=eff.astype(np.float32).reshape(n_img, k),
            cfo=acq.cfo + nu / self.cfg.sps,
            tau=acq.tau,
            burst_start=self.burst_start(acq.tau),
            metric=acq.metric,
            noise_var=n0,
            sco=sco,
        )

    # --- offline use --------------------------------------------------------------------------
    def receive(self, z: np.ndarray) -> RxFrame:
        """The first frame in z that `acquire` and `finish` decode. Raises FrameRejected with the
        reason of the candidate that got furthest (REASONS is in order of progress)."""
        if len(z) < self.lead + self.acquire_span:
            raise FrameRejected("short", f"{len(z)} samples do not cover a header section")
        best = FrameRejected("no_preamble", "the detector found no preamble")
        rank = FrameRejected.REASONS.index
        for hit in Detector(self.cfg).scan(z):
            try:
                return self.finish(z, self.acquire(z, self.candidates(hit)))
            except FrameRejected as exc:
                if rank(exc.reason) >= rank(best.reason):
                    best = exc
        raise best

    def find_frames(self, z: np.ndarray) -> list[RxFrame]:
        """Every frame in a capture z (matched-filter output), in order; rejected candidates are
        skipped. For tests and offline replays: streaming receivers use `Detector`, `acquire` and
        `finish` the same way."""
        det = Detector(self.cfg)
        frames: list[RxFrame] = []
        pos = 0
        for hit in det.scan(z):
            taus = self.candidates(hit)
            taus = taus[taus >= pos]
            if len(taus) == 0:
                continue
            try:
                frame = self.finish(z, self.acquire(z, taus))
            except FrameRejected:
                continue
            frames.append(frame)
            pos = frame.tau + self.next_preamble(frame.header)
        return frames

    def next_preamble(self, header: Header) -> int:
        """Samples from a frame's preamble start to the earliest start of the next one: a burst
        (the next burst begins after this one ends), less the largest clock drift over it."""
        n = self.cfg.burst_samples(header.rate, header.images)
        return int(n * (1.0 - self.max_sco)) - 2
