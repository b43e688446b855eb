"""`rkdsc tx` / `rkdsc rx`: the over-the-air link with a radio, a simulated channel or a recording.

    tx:  images → semantic_tx → ota_tx → { file: SigMF recording
                                          sim:  ota_channel → SigMF recording
                                          uhd:  USRP sink     soapy: Soapy sink (e.g. HackRF) }
    rx:  { file: SigMF replay   sim: images → … → ota_channel   uhd / soapy: radio source }
         → ota_rx → semantic_rx → accuracy_sink (+ decision log), optionally recording the input

Radios are built by `rkdsc_gr.radios` (drivers imported only in their mode; with no device attached
a one-line RkdscError).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from gnuradio import gr

from rkdsc_core.errors import RkdscError
from rkdsc_core.runtime import load_bundle
from rkdsc_gr.ota_channel import DEFAULT_TAPS
from rkdsc_gr.ota_loopback import bundle_id
from rkdsc_gr.radios import RadioConfig, radio_sink, radio_source

log = logging.getLogger(__name__)

MODES = ("sim", "uhd", "soapy", "file")
POLL_S = 0.05


@dataclass
class SimConfig:
    """The simulated air (`ota_channel`): Es/N0, CFO (cycles/sample), clock offset, taps."""

    snr_db: float = 10.0
    cfo: float = 1e-3
    sco_ppm: float = 50.0
    taps: tuple = DEFAULT_TAPS
    seed: int = 0


@dataclass
class RecordConfig:
    """What `--record` writes: the datatype ("cf32_le" or "ci16_le") and the metadata's
    `core:hw` / `core:author` ("" = left out)."""

    datatype: str = "cf32_le"
    hw: str = ""
    author: str = ""

    def check(self) -> None:
        from rkdsc_gr.sigmf_meta import RECORD_DATATYPES

        if self.datatype not in RECORD_DATATYPES:
            raise RkdscError(
                f"--record-datatype {self.datatype}: choose from {', '.join(RECORD_DATATYPES)}"
            )


@dataclass
class _Graph:
    tb: gr.top_block
    blocks: dict = field(default_factory=dict)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RkdscError(f"--mode {mode}: choose from {', '.join(MODES)}")


def _transmit_side(
    g: _Graph,
    bundle: str,
    n: int,
    rate: int,
    split: str,
    image_rate: float,
    if_offset: float,
    device: str = "cpu",
    images_per_frame: int = 1,
    selection: str = "range",
    data_root: str | None = None,
):
    """images → semantic_tx → ota_tx (N = `images_per_frame` images per frame) in `g`; returns
    ota_tx. `selection` (rkdsc_image_source): "range" = the first n images, numbered by their
    index in the split, so a receiver in another process labels them from the whole split."""
    from rkdsc_gr.image_source import image_source
    from rkdsc_gr.ota_tx import ota_tx
    from rkdsc_gr.semantic_tx import semantic_tx

    bun = load_bundle(bundle, device)
    try:
        bun.check_rate(rate)
    except ValueError as exc:
        raise RkdscError(str(exc)) from None
    loop = n == 0
    if loop and image_rate <= 0:
        raise RkdscError("--n 0 (loop over the dataset) needs --image-rate > 0")
    source = image_source(
        bun.dataset,
        split,
        n_images=n,
        loop=loop,
        max_rate=image_rate,
        root=data_root or "",
        selection=selection,
    )
    encoder = semantic_tx(bundle, rate, device)
    tx = ota_tx(
        bundle_id=bundle_id(bundle, device),
        if_offset=if_offset,
        max_queue=max(4096, n + 16),
        images_per_frame=images_per_frame,
    )
    g.tb.msg_connect(source, "out", encoder, "in")
    g.tb.msg_connect(encoder, "out", tx, "in")
    g.blocks.update(source=source, encoder=encoder, tx=tx)
    return tx


def _recorder(
    g: _Graph,
    path: str,
    radio: RadioConfig,
    generator: str,
    description: str,
    opts: RecordConfig,
):
    from rkdsc_gr.sigmf_io import ota_sigmf_sink

    rec = ota_sigmf_sink(
        path,
        radio.samp_rate,
        radio.freq,
        generator,
        description,
        opts.hw,
        opts.author,
        opts.datatype,
    )
    g.blocks["record"] = rec
    return rec


def _run(g: _Graph, duration: float | None) -> float:
    """Run to completion (finite graphs), or for `duration` seconds; Ctrl-C stops cleanly."""
    t0 = time.monotonic()
    try:
        if duration is None:
            g.tb.run()
        else:
            g.tb.start()
            while time.monotonic() - t0 < duration:
                time.sleep(POLL_S)
            g.tb.stop()
            g.tb.wait()
    except KeyboardInterrupt:
        g.tb.stop()
        g.tb.wait()
    return time.monotonic() - t0


def run_tx(
    mode: str,
    bundle: str = "default",
    record: str | None = None,
    n: int = 100,
    rate: int = 16,
    split: str = "test",
    image_rate: float = 0.0,
    radio: RadioConfig | None = None,
    sim: SimConfig | None = None,
    duration: float | None = None,
    record_opts: RecordConfig | None = None,
    data_root: str | None = None,
) -> dict:
    """Transmit `n` images (0: loop at `image_rate`) of the bundle's dataset (at `data_root` for
    CIFAR / ImageFolder bundles). file / sim need `record` (the SigMF base); uhd / soapy may record
    what they send. Returns a summary dict."""
    _check_mode(mode)
    radio, sim = radio or RadioConfig(), sim or SimConfig()
    opts = record_opts or RecordConfig()
    opts.check()
    if mode in ("file", "sim") and not record:
        raise RkdscError(f"--mode {mode} writes a recording: give --record FILE")
    hardware = mode in ("uhd", "soapy")
    g = _Graph(gr.top_block("rkdsc_tx"))
    tx = _transmit_side(
        g,
        bundle,
        n,
        rate,
        split,
        image_rate or (100.0 if hardware else 0.0),
        radio.if_offset,
        images_per_frame=radio.images_per_frame,
        data_root=data_root,
    )
    desc = f"rkdsc tx --mode {mode}: K={rate}, bundle {bundle}"
    if mode == "sim":
        chan = _sim_air(sim)
        rec = _recorder(
            g,
            record,
            radio,
            "rkdsc ota_tx (transmit-side offsets)",
            desc + f", simulated air at {sim.snr_db:g} dB",
            opts,
        )
        g.tb.connect(tx, chan, rec)
        g.tb.msg_connect(tx, "frames", rec, "frames")
    elif mode == "file":
        rec = _recorder(g, record, radio, "rkdsc ota_tx", desc, opts)
        g.tb.connect(tx, rec)
        g.tb.msg_connect(tx, "frames", rec, "frames")
    else:
        g.tb.connect(tx, radio_sink(mode, radio))
        if record:
            rec = _recorder(g, record, radio, "rkdsc ota_tx", desc, opts)
            g.tb.connect(tx, rec)
            g.tb.msg_connect(tx, "frames", rec, "frames")
    seconds = _run(g, duration)
    out = {
        "mode": mode,
        "frames_sent": tx.frames_sent(),
        "images_sent": tx.images_sent(),
        "samples": tx.samples_sent(),
        "seconds": seconds,
        "record": record,
    }
    if record:
        from rkdsc_gr.sigmf_io import sigmf_paths

        out["record"] = [str(p) for p in sigmf_paths(record)]
    return out


def run_rx(
    mode: str,
    bundle: str = "default",
    input_path: str | None = None,
    record: str | None = None,
    json_path: str = "",
    decisions: str | None = None,
    n: int = 100,
    rate: int = 16,
    split: str = "test",
    doppler: float = 0.0,
    radio: RadioConfig | None = None,
    sim: SimConfig | None = None,
    duration: float | None = None,
    record_opts: RecordConfig | None = None,
    datatype: str = "",
    samp_rate: float | None = None,
    data_root: str | None = None,
) -> dict:
    """Receive: replay `input_path` (file: a SigMF recording of any datatype `sigmf_io` reads, or
    a raw capture of `datatype` at `samp_rate`), simulate `n` images through the air (sim), or
    listen to a radio for `duration` seconds (until Ctrl-C when None). Returns accuracy and
    receiver stats."""
    _check_mode(mode)
    radio, sim = radio or RadioConfig(), sim or SimConfig()
    opts = record_opts or RecordConfig()
    opts.check()
    if mode != "file" and (input_path or datatype):
        raise RkdscError(f"--input and --datatype are for --mode file, not --mode {mode}")
    g = _Graph(gr.top_block("rkdsc_rx"))
    if mode == "file":
        source = _replay(input_path, datatype, samp_rate, radio)
    elif mode == "sim":
        # measured in this process: the images `rkdsc eval --n` scores
        tx = _transmit_side(
            g,
            bundle,
            n,
            rate,
            split,
            0.0,
            radio.if_offset,
            images_per_frame=radio.images_per_frame,
            selection="balanced",
            data_root=data_root,
        )
        source = _sim_air(sim)
        g.tb.connect(tx, source)
    else:
        source = radio_source(mode, radio)
    from rkdsc_gr.labels import bundle_labels

    # frames carry no labels: those of the images sent (another process sends a range)
    labels = bundle_labels(bundle, split, data_root or "", n=n if mode == "sim" else None)
    rx, sink = _receive_side(g, source, bundle, labels, doppler, radio.if_offset, json_path)
    if decisions:  # held in g.blocks: a gateway block whose Python object is collected crashes
        from rkdsc_gr.ota_decision_log import ota_decision_log

        g.blocks["decisions"] = ota_decision_log(decisions)
        g.tb.msg_connect(g.blocks["decoder"], "out", g.blocks["decisions"], "in")
    if record:
        rec = _recorder(g, record, radio, "rkdsc ota_rx", f"rkdsc rx --mode {mode}", opts)
        g.tb.connect(source, rec)
        g.tb.msg_connect(rx, "out", rec, "frames")
    seconds = _run(g, duration if mode in ("uhd", "soapy") else None)
    stats = sink.stats()
    return {
        "mode": mode,
        "decisions": stats["n"],
        "accuracy": stats["accuracy"],
        "rx": rx.stats(),
        "seconds": seconds,
    }


def _replay(input_path: str | None, datatype: str, samp_rate: float | None, radio: RadioConfig):
    """The SigMF (or raw) replay source; sets `radio`'s rate and carrier from the recording."""
    from rkdsc_gr.sigmf_io import ota_sigmf_source

    if not input_path:
        raise RkdscError("--mode file replays a recording: give --input FILE")
    try:
        source = ota_sigmf_source(input_path, False, datatype, samp_rate or 0.0)
    except (OSError, ValueError) as exc:
        raise RkdscError(f"cannot replay: {exc}") from None
    radio.samp_rate, radio.freq = source.samp_rate, source.center_freq or radio.freq
    return source


def _sim_air(sim: SimConfig):
    """The simulated air of `rkdsc tx` / `rkdsc rx --mode sim`."""
    from rkdsc_gr.ota_channel import ota_channel

    return ota_channel(sim.snr_db, sim.cfo, sim.sco_ppm, sim.taps, seed=sim.seed)


def _receive_side(
    g: _Graph, source, bundle: str, labels, doppler: float, if_offset: float, json_path: str
):
    """source → ota_rx → semantic_rx → accuracy_sink in `g`; returns (ota_rx, accuracy_sink)."""
    from rkdsc_gr.accuracy_sink import accuracy_sink
    from rkdsc_gr.ota_rx import ota_rx
    from rkdsc_gr.semantic_rx import semantic_rx

    rx = ota_rx(
        doppler=doppler,
        if_offset=if_offset,
        labels=labels,
        max_rate=load_bundle(bundle).k_max,
        bundle_id=bundle_id(bundle),  # another bundle's frames: rejected, counted in "bundle"
    )
    decoder = semantic_rx(bundle)
    sink = accuracy_sink(json_path or "")
    g.tb.connect(source, rx)
    g.tb.msg_connect(rx, "out", decoder, "in")
    g.tb.msg_connect(decoder, "out", sink, "in")
    g.blocks.update(rx=rx, decoder=decoder, sink=sink)
    return rx, sink
