"""`rkdsc loopback --phy waveform`: the evaluation through the full waveform flowgraph, one graph
per SNR point (the graph of flowgraphs/ota_sim.grc):

    image_source → semantic_tx → ota_tx → ota_channel (fading, CFO, SCO, taps, noise)
                 → ota_rx → semantic_rx → accuracy_sink

Returns the JSON of DESIGN.md §5; each point adds `frames_sent` / `frames_detected`,
`images_sent` / `images_detected`, `delivered_accuracy` (correct decisions ÷ images sent: an image
that never arrived is wrong), `channel_uses_per_image` (every symbol period of every burst, guard
and filter tails included, ÷ images sent), the mean estimated SNR and the receiver's rejection
counts. A point where nothing arrived has `accuracy` null and `delivered_accuracy` 0. Every
point also has `mean_symbols` (semantic symbols sent per image) and `mean_channel_uses` (symbol
periods of the frames on the air per image: preamble, header, pilots and payload, each frame's
shared among the images it carries).

With `adapt` "snr" or "ir" (issue 18) the feedback closes the loop through a `feedback_link`:

    ir:  semantic_rx feedback ─► feedback_link ─► semantic_tx feedback, ota_tx feedback
    snr: ota_rx feedback ─────► feedback_link ─► semantic_tx feedback, ota_tx feedback

Increments travel in frames of their own kind (version-3 headers); images are paced so that
answers to requests do not queue behind a backlog of first increments, and the receiver's
timeout decides an image whose request or increment was lost. Points then add
`requests_per_image`, `feedback_per_image`, `feedback_lost`, `timeouts`, the round trips
(`rtt_mean_s`, `rtt_p95_s`, measured at ota_tx from an image's burst to its feedback) and, for
"snr", the histogram of chosen K.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gnuradio import gr

from rkdsc_core.errors import RkdscError
from rkdsc_core.eval.stats import wilson
from rkdsc_core.phy import bundle_id_from_bytes
from rkdsc_core.runtime import load_bundle
from rkdsc_gr.loopback_report import LoopbackRequest, adaptive_encoder, feedback_path
from rkdsc_gr.ota_channel import DEFAULT_TAPS

log = logging.getLogger(__name__)

#: loopback channel name → ota_channel fading (block fading has no waveform counterpart)
WAVEFORM_CHANNELS = {"awgn": "none", "rayleigh_fast": "rayleigh", "rician": "rician"}
POLL_S = 0.01
#: images/s sent with rate adaptation: well under the chain's ~50 frames/s (2-core machine) at
#: two or three frames per image, so answers to requests do not wait behind a backlog
ADAPT_PACE_IMAGES_PER_S = 10.0
#: an adaptive point ends this long after the last activity once nothing is owed
SETTLE_S = 2.0


def bundle_id(bundle: str, device: str = "cpu") -> int:
    """16-bit id of a bundle for frame headers: CRC-16 of its manifest file."""
    from rkdsc_core.bundle import MANIFEST

    return bundle_id_from_bytes((load_bundle(bundle, device).path / MANIFEST).read_bytes())


@dataclass(frozen=True)
class WaveformPhy:
    """What the waveform loopback adds to a `LoopbackRequest`: the channel's impairments beyond
    fading and noise, and the images per frame."""

    cfo: float = 1e-3  # cycles/sample
    sco_ppm: float = 50.0  # sample clock offset
    taps: tuple = DEFAULT_TAPS  # multipath
    images_per_frame: int = 1


@dataclass
class WaveformLoopback:
    """One waveform loopback flowgraph (blocks kept for inspection)."""

    tb: gr.top_block
    source: object
    encoder: object
    tx: object
    channel: object
    rx: object
    decoder: object
    sink: object
    link: object = None


def waveform_fading(channel: str) -> str:
    """The `ota_channel` fading of a `--channel` name; a one-line error for channels without a
    waveform loopback."""
    if channel not in WAVEFORM_CHANNELS:
        raise RkdscError(
            f"--channel {channel} has no waveform loopback (choose from "
            f"{', '.join(WAVEFORM_CHANNELS)}; block fading needs --phy symbol)"
        )
    return WAVEFORM_CHANNELS[channel]


def build_waveform_loopback(
    req: LoopbackRequest,
    dataset,
    snr_db: float,
    seed: int,
    phy: WaveformPhy = WaveformPhy(),
    labels=None,
) -> WaveformLoopback:
    """The graph of `ota_sim.grc` at one SNR, built in Python: `req.n` images of `dataset` (the
    bundle's `DatasetSpec`) through the impairments of `phy`; `labels` (image index → label)
    lets the receiver label what it decodes (frames carry no labels). `req.adapt`: rate
    adaptation through a feedback link (module docstring)."""
    from rkdsc_gr.accuracy_sink import accuracy_sink
    from rkdsc_gr.image_source import image_source
    from rkdsc_gr.ota_channel import ota_channel
    from rkdsc_gr.ota_rx import ota_rx
    from rkdsc_gr.ota_tx import ota_tx
    from rkdsc_gr.semantic_rx import semantic_rx

    bundle, device, adapt, n = req.bundle, req.device, req.adapt, req.n
    fading = waveform_fading(req.channel)
    bid = bundle_id(bundle, device)
    k_max = int(load_bundle(bundle, device).k_max)
    tb = gr.top_block("rkdsc_ota_sim")
    pace = ADAPT_PACE_IMAGES_PER_S if adapt.mode != "none" else 0.0
    source = image_source(dataset, req.split, n_images=n, max_rate=pace, root=req.data_root or "")
    if labels is None:
        labels = source.labels  # image_source starts at index 0
    encoder = adaptive_encoder(bundle, req.rate, device, adapt, req.channel)
    # frames fill up whatever the encoder's pace; run_graph flushes the last one explicitly
    tx = ota_tx(
        bundle_id=bid,
        max_queue=max(4096, n + 16),
        images_per_frame=phy.images_per_frame,
        flush_s=3600.0,
    )
    chan = ota_channel(
        snr_db, phy.cfo, phy.sco_ppm, phy.taps, fading, req.fd_ts, req.k_factor, seed
    )
    rx = ota_rx(
        bundle_id=bid,
        doppler=req.fd_ts if fading != "none" else 0.0,
        labels=labels,
        max_rate=k_max,
        max_images=phy.images_per_frame,
    )
    decoder = semantic_rx(bundle, device, confidence=adapt.confidence, timeout_s=adapt.timeout_s)
    sink = accuracy_sink()
    tb.msg_connect(source, "out", encoder, "in")
    tb.msg_connect(encoder, "out", tx, "in")
    tb.connect(tx, chan, rx)
    tb.msg_connect(rx, "out", decoder, "in")
    tb.msg_connect(decoder, "out", sink, "in")
    link = None
    if adapt.mode != "none":
        link = feedback_path(adapt, seed)
        # IR needs the decoder's confidence and requests; SNR feedback is the PHY's estimate
        tb.msg_connect(decoder if adapt.mode == "ir" else rx, "feedback", link, "in")
        tb.msg_connect(link, "out", encoder, "feedback")
        tb.msg_connect(link, "out", tx, "feedback")
    return WaveformLoopback(tb, source, encoder, tx, chan, rx, decoder, sink, link)


def received_all(tx, rx, sco_ppm: float = 0.0) -> bool:
    """True once `rx` has read everything `tx` sent that can reach it: the channel's resampler
    shortens the stream by |sco_ppm|·1e-6 and holds back a few samples, and the detector
    processes whole FFT blocks (`output_multiple`). The transmitter's idle tail is longer than
    that, so the last frame has been handled by then."""
    lag = rx.correlator.output_multiple() + 16
    return rx.deframer.nitems_read(0) >= tx.samples_sent() * (1 - abs(sco_ppm) * 1e-6) - lag


def run_graph(lb: WaveformLoopback, n: int, timeout_s: float, sco_ppm: float = 0.0) -> dict:
    """Start; wait (polling, with a deadline) until all `n` images have left in bursts and the
    idle tail after them, the receiver has read into that tail, every image it decoded has a
    decision and the accuracy sink has counted each one; stop. A point dict."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    lb.tb.start()
    flushed = False
    activity, still = None, t0
    try:
        while time.monotonic() < deadline:
            if not flushed and lb.encoder.encoded() + lb.encoder.dropped() >= n:
                lb.tx.flush()  # queued after every symbol PDU: the last frame leaves with them
                flushed = True
            if lb.link is not None:  # increments and answers: images_sent counts increments
                if lb.sink.count() + lb.sink.dropped() >= n:
                    break
                now = time.monotonic()
                seen = (lb.tx.samples_sent(), lb.decoder.decoded(), lb.decoder.counts()["feedback"])
                if seen != activity:
                    activity, still = seen, now
                elif (
                    flushed
                    and now - still > SETTLE_S
                    and lb.decoder.waiting() == 0
                    and received_all(lb.tx, lb.rx, sco_ppm)
                ):
                    break  # images whose first increment was lost never get a decision
            elif lb.tx.images_sent() + lb.tx.dropped() + lb.encoder.dropped() >= n:
                decided = lb.decoder.decoded() + lb.decoder.dropped()
                counted = lb.sink.count() + lb.sink.dropped()  # decisions: another thread
                if (
                    received_all(lb.tx, lb.rx, sco_ppm)
                    and decided >= lb.rx.images_received()
                    and counted >= lb.decoder.decoded()
                ):
                    break
            time.sleep(POLL_S)
        else:
            log.warning("loopback: deadline of %.0f s reached", timeout_s)
        elapsed = time.monotonic() - t0
    finally:  # a running graph left behind aborts the interpreter at exit
        lb.tb.stop()
        lb.tb.wait()
    return point_stats(lb, n, elapsed)


def point_stats(lb: WaveformLoopback, n: int, elapsed: float) -> dict:
    """The accounting of one point: every image sent counts (DESIGN.md §5); 95% Wilson intervals
    for the accuracy of decoded images and for the delivered accuracy."""
    stats = lb.sink.stats()
    rx = lb.rx.stats()
    sps = lb.tx.cfg.sps
    sent = lb.tx.images_sent()
    return {
        "accuracy": stats["accuracy"],
        "ci95": wilson(stats["correct"], stats["n"]) if stats["n"] else None,
        "delivered_accuracy": stats["correct"] / n if n else None,
        "images_decided": stats["n"],
        "delivered_ci95": wilson(stats["correct"], n) if n else None,
        "frames_sent": lb.tx.frames_sent(),
        "frames_detected": rx["frames"],
        "images_sent": sent,
        "images_detected": rx["images"],
        "images_per_frame": lb.tx.cfg.images_per_frame,
        "channel_uses_per_image": lb.tx.burst_samples() / sps / sent if sent else None,
        "mean_symbols": lb.encoder.symbols_sent() / n if n else None,
        "mean_channel_uses": lb.tx.frame_symbols() / n if n else None,
        "snr_est_db": rx["snr_db_mean"],
        "dropped": lb.encoder.dropped() + lb.tx.dropped() + lb.decoder.dropped(),
        "rx": {
            k: rx[k]
            for k in ("hits", "candidates", "no_preamble", "header_crc", "rate", "n_images")
        }
        | {"bundle": rx["bundle"]},
        "images_per_s": stats["n"] / elapsed if elapsed > 0 else None,
        "samples": lb.tx.samples_sent(),
        "samples_per_s": lb.rx.stats()["samples_read"] / elapsed if elapsed > 0 else None,
    } | (adaptive_stats(lb, n) if lb.link is not None and n else {})


def adaptive_stats(lb: WaveformLoopback, n: int) -> dict:
    """The feedback loop's accounting of one point (issue 18), per image sent."""
    counts, trips = lb.decoder.counts(), lb.tx.round_trips()
    return {
        # per image, not per increment sent (images_sent counts increments)
        "channel_uses_per_image": lb.tx.burst_samples() / lb.tx.cfg.sps / n,
        "requests_per_image": counts["requests"] / n,
        "feedback_per_image": (lb.link.passed() + lb.link.lost()) / n,
        "feedback_lost": lb.link.lost(),
        "timeouts": counts["timeouts"],
        "late_increments": counts["late"],
        "rtt_mean_s": trips["rtt_mean_s"],
        "rtt_p95_s": trips["rtt_p95_s"],
        "k_histogram": {str(k): v for k, v in lb.encoder.k_histogram().items()},
    }


def run_waveform_loopback(req: LoopbackRequest, **phy) -> dict:
    """Accuracy vs SNR through the waveform flowgraph on the first `req.n` images of the bundle's
    split (the images `rkdsc eval --n` and `--phy symbol` use); `phy`: `WaveformPhy`'s fields
    (impairments, N = `images_per_frame` images per frame). Its defaults are the acceptance
    scenario: CFO 1e-3 cycles/sample, +50 ppm sample clock, the 3-tap `DEFAULT_TAPS`."""
    phy = WaveformPhy(**phy)
    bun, ds, req = req.resolve()
    n, adapt, points = req.n, req.adapt, []
    for i, snr in enumerate(req.snrs):
        lb = build_waveform_loopback(req, ds, float(snr), req.seed + i, phy)
        paced = n / ADAPT_PACE_IMAGES_PER_S if adapt.mode != "none" else 0.0
        point = run_graph(lb, n, req.timeout_s or 60.0 + n / 10.0 + paced, phy.sco_ppm)
        points.append({"snr_db": float(snr), **point})
        log.info(
            "waveform loopback %s %g dB K=%d N=%d: delivered %.4f, %d/%d frames, est. SNR %s dB",
            req.channel,
            snr,
            req.rate,
            phy.images_per_frame,
            point["delivered_accuracy"] or 0.0,
            point["frames_detected"],
            point["frames_sent"],
            "n/a" if point["snr_est_db"] is None else f"{point['snr_est_db']:.2f}",
        )
    config = req.config(
        cfo=phy.cfo,
        sco_ppm=phy.sco_ppm,
        images_per_frame=phy.images_per_frame,
        taps=[[t.real, t.imag] for t in map(complex, phy.taps)],
        adapt_pace_images_per_s=ADAPT_PACE_IMAGES_PER_S if adapt.mode != "none" else None,
    )
    return req.report(bun, "waveform", points, config)
