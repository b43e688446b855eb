"""`rkdsc loopback --phy symbol`: the offline evaluation, run through a GNU Radio flowgraph of the
rkdsc blocks (image_source → semantic_tx → symbol_channel → semantic_rx → accuracy_sink), one
graph per SNR point; returns the JSON of DESIGN.md §5 (points carry frames sent / detected).
With `adapt` "snr" or "ir" the receiver's feedback goes back to the transmitter through a
`feedback_link` (delay, loss) and the rate follows the channel (issue 18).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gnuradio import gr

from rkdsc_core.adapt import ADAPT_MODES
from rkdsc_core.errors import RkdscError
from rkdsc_gr._polling import wait_until
from rkdsc_gr.loopback_report import (
    NO_ADAPT,
    Adapt,
    LoopbackRequest,
    adaptive_encoder,
    feedback_path,
)

log = logging.getLogger(__name__)

PHYS = ("symbol", "waveform")  # waveform: rkdsc_gr.ota_loopback
#: where the symbol-level channel draws come from: "keyed" = rkdsc eval's draws
#: (rkdsc_keyed_channel: the same h and noise as every offline method), "gnuradio" = GNU Radio's
#: own channel blocks (rkdsc_symbol_channel)
DRAWS = ("keyed", "gnuradio")
SNR_PACE_IMAGES_PER_S = 200.0


@dataclass
class SymbolLoopback:
    """One symbol-level loopback flowgraph (blocks kept for inspection)."""

    tb: gr.top_block
    source: object
    tx: object
    channel: object
    rx: object
    sink: object
    link: object = None


def build_symbol_loopback(
    req: LoopbackRequest, dataset, snr_db: float, seed: int, draws: str = "keyed"
) -> SymbolLoopback:
    """The graph of the `loopback_symbols.grc` flowgraph (with `req.adapt`, of
    `loopback_feedback.grc`) at one SNR, built in Python: `req.n` images of `dataset` (the
    bundle's `DatasetSpec`); `draws` picks the channel block (`DRAWS`)."""
    from rkdsc_gr.accuracy_sink import accuracy_sink
    from rkdsc_gr.image_source import image_source
    from rkdsc_gr.keyed_channel import keyed_channel
    from rkdsc_gr.semantic_rx import semantic_rx
    from rkdsc_gr.symbol_channel import symbol_channel

    adapt, channel, kw = req.adapt, req.channel, dict(fd_ts=req.fd_ts, k_factor=req.k_factor)
    tb = gr.top_block("rkdsc_loopback_symbols")
    # with SNR feedback the images are paced: a queue full of images would all be encoded
    # before the first feedback is read
    pace = SNR_PACE_IMAGES_PER_S if adapt.mode == "snr" else 0.0
    source = image_source(
        dataset, req.split, n_images=req.n, max_rate=pace, root=req.data_root or ""
    )
    tx = adaptive_encoder(req.bundle, req.rate, req.device, adapt, channel)
    block = keyed_channel if draws == "keyed" else symbol_channel
    chan = block(channel, snr_db, seed=seed, **kw)
    rx = semantic_rx(req.bundle, req.device, confidence=adapt.confidence, timeout_s=adapt.timeout_s)
    sink = accuracy_sink()
    tb.msg_connect(source, "out", tx, "in")
    tb.msg_connect(tx, "out", chan, "in")
    tb.msg_connect(chan, "out", rx, "in")
    tb.msg_connect(rx, "out", sink, "in")
    link = None
    if adapt.mode != "none":
        link = feedback_path(adapt, seed)
        tb.msg_connect(rx, "feedback", link, "in")
        tb.msg_connect(link, "out", tx, "feedback")
    return SymbolLoopback(tb, source, tx, chan, rx, sink, link)


def run_graph(lb: SymbolLoopback, n: int, timeout_s: float) -> dict:
    """Start, wait (polling the sink, with a deadline) for `n` decisions, stop; a point dict."""
    t0 = time.monotonic()
    lb.tb.start()
    deadline = t0 + timeout_s
    wait_until(lambda: lb.sink.count() >= n, deadline - time.monotonic())
    elapsed = time.monotonic() - t0
    lb.tb.stop()
    lb.tb.wait()
    stats = lb.sink.stats()
    if stats["n"] < n:
        log.warning("loopback: %d of %d decisions after %.0f s", stats["n"], n, elapsed)
    point = {
        "accuracy": stats["accuracy"],
        "frames_sent": lb.tx.encoded(),
        "frames_detected": stats["n"],
        "dropped": lb.tx.dropped() + lb.channel.dropped() + lb.rx.dropped(),
        "images_per_s": stats["n"] / max(elapsed, 1e-9),
    }
    if lb.link is not None:
        counts = lb.rx.counts()
        point.update(
            mean_channel_uses=lb.tx.symbols_sent() / n,
            requests_per_image=counts["requests"] / n,
            feedback_per_image=counts["feedback"] / n,
            feedback_lost=lb.link.lost(),
            timeouts=counts["timeouts"],
            late_increments=counts["late"],
            k_histogram={str(k): v for k, v in lb.tx.k_histogram().items()},
        )
    return point


def run_loopback(
    bundle: str = "default",
    channel: str = "awgn",
    snrs: list[float] | tuple[float, ...] = (10.0,),
    rate: int = 16,
    n: int | None = None,
    split: str = "test",
    data_root: str | None = None,
    seed: int = 0,
    phy: str = "symbol",
    device: str = "cpu",
    fd_ts: float = 0.01,
    k_factor: float = 4.0,
    timeout_s: float | None = None,
    draws: str | None = None,
    images_per_frame: int = 1,
    adapt: Adapt = NO_ADAPT,
) -> dict:
    """Accuracy vs SNR through the symbol-level flowgraph, on the first `n` images of the bundle's
    dataset split (all when None): the same images `rkdsc eval --n` uses, and with `draws`
    "keyed" (the default for `phy="symbol"`) the same channel draws, so that a point equals
    `rkdsc eval`'s at the same seed; "gnuradio" runs GNU Radio's own channel blocks.
    `images_per_frame` (N images per frame) is a waveform setting. `adapt`: rate adaptation
    (both PHYs; `rkdsc_gr.ota_loopback` for the waveform's)."""
    draws = _check_phy(phy, draws, images_per_frame)
    _check_adapt(adapt, phy, rate)
    req = LoopbackRequest(
        bundle=bundle,
        channel=channel,
        snrs=tuple(snrs),
        rate=rate,
        n=n,
        split=split,
        data_root=data_root,
        seed=seed,
        device=device,
        fd_ts=fd_ts,
        k_factor=k_factor,
        timeout_s=timeout_s,
        adapt=adapt,
    )
    if phy == "waveform":
        from rkdsc_gr.ota_loopback import run_waveform_loopback

        return run_waveform_loopback(req, images_per_frame=images_per_frame)
    return run_symbol_loopback(req, draws)


def run_symbol_loopback(req: LoopbackRequest, draws: str = "keyed") -> dict:
    """`run_loopback` at `phy="symbol"`: one graph per SNR of `req.snrs`."""
    bun, ds, req = req.resolve()
    n, points = req.n, []
    for i, snr in enumerate(req.snrs):
        seed = req.seed if draws == "keyed" else req.seed + i  # keyed draws differ per SNR
        lb = build_symbol_loopback(req, ds, float(snr), seed, draws)
        paced = n / SNR_PACE_IMAGES_PER_S if req.adapt.mode == "snr" else 0.0
        point = run_graph(lb, n, req.timeout_s or 60.0 + n / 20.0 + paced)
        points.append({"snr_db": float(snr), **point})
        _log_point(req.channel, snr, req.rate, point)
    return req.report(bun, "symbol", points, req.config(draws=draws))


def _log_point(channel: str, snr: float, rate: int, point: dict) -> None:
    log.info(
        "loopback %s %g dB K=%d: accuracy %.4f (%d/%d frames, %.0f images/s)",
        channel,
        snr,
        rate,
        point["accuracy"] or 0.0,
        point["frames_detected"],
        point["frames_sent"],
        point["images_per_s"] or 0.0,
    )


def _check_phy(phy: str, draws: str | None, images_per_frame: int) -> str:
    """One-line errors for options that do not fit the PHY; the symbol-level draws to use."""
    if phy not in PHYS:
        raise RkdscError(f"--phy {phy} is not available yet (choose from {', '.join(PHYS)})")
    if phy == "waveform" and draws is not None:
        raise RkdscError("--draws applies to --phy symbol (the waveform channel is GNU Radio's)")
    draws = draws or "keyed"
    if draws not in DRAWS:
        raise RkdscError(f"--draws {draws}: choose from {', '.join(DRAWS)}")
    if phy == "symbol" and images_per_frame != 1:
        raise RkdscError("--images-per-frame applies to --phy waveform (symbols carry no frames)")
    return draws


def _check_adapt(adapt: Adapt, phy: str, rate: int) -> None:
    """One-line errors for rate-adaptation options that do not fit together."""
    if adapt.mode not in ADAPT_MODES:
        raise RkdscError(f"--adapt {adapt.mode}: choose from {', '.join(ADAPT_MODES)}")
    if adapt.timeout_s <= 0:
        raise RkdscError(f"--feedback-timeout {adapt.timeout_s} must be > 0 seconds")
    if adapt.mode == "ir" and not 1 <= adapt.k0 <= rate:
        raise RkdscError(f"--k0 {adapt.k0} must lie in 1..--rate {rate}")
    if adapt.step is not None and adapt.step < 1:
        raise RkdscError(f"--step {adapt.step} must be >= 1")
    if not 0.0 < adapt.confidence <= 1.0 or not 0.0 < adapt.target <= 1.0:
        raise RkdscError("--confidence and --target-accuracy must lie in (0, 1]")
    if adapt.feedback_delay < 0 or not 0.0 <= adapt.feedback_loss < 1.0:
        raise RkdscError("--feedback-delay must be >= 0 and --feedback-loss in [0, 1)")
