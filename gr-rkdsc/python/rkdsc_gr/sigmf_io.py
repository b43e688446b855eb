"""SigMF recording and replay blocks: the samples go through GNU Radio's stock file and
type-conversion blocks, the `.sigmf-meta` through the `sigmf` library (`sigmf_meta`).

The sink records cf32_le or ci16_le (half the disk) and, once its file sink has written its last
samples and closed the file, writes the metadata with `core:sha512` and one annotation per frame
PDU (`sample_start` / `sample_count` metadata: `ota_tx`'s `frames` port at a transmitter,
`ota_rx`'s symbol PDUs at a receiver). The source replays cf32_le/be, ci16_le/be, ci8 and cu8,
scaled to ±1.0 full scale (see `sigmf_meta`), or a raw capture of a given datatype.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import blocks, gr

from rkdsc_gr._hier import init_hier
from rkdsc_gr._pdu import PORT_IN, DropCounter, guarded, split_pdu
from rkdsc_gr.sigmf_meta import (
    RECORD_DATATYPES,
    Datatype,
    annotation_of,
    open_recording,
    sigmf_paths,
    write_meta,
)

log = logging.getLogger(__name__)

_FIELDS = {  # PDU metadata key → annotation key
    "frame_index": "rkdsc:frame_index",
    "index": "rkdsc:image_index",
    "rate": "rkdsc:rate",
    "label": "rkdsc:label",
    "bundle_id": "rkdsc:bundle_id",
    "snr_db": "rkdsc:snr_db",
    "cfo": "rkdsc:cfo",
    "clipped": "rkdsc:clipped",
}
SETTLE_S = 1.0  # a file sink that took nothing for this long has stopped (tb.stop())
THIN = 4096  # the annotator sees one sample in THIN (it only needs the stream's end)


def annotation(meta: dict, generator: str) -> dict | None:
    """One SigMF annotation from a frame's metadata dict (None without sample_start/count)."""
    return annotation_of(meta, generator, _FIELDS)


class ota_sigmf_annotator(gr.sync_block):  # noqa: N801 - GNU Radio block naming
    """Collects frame annotations from PDUs on `in`; in `stop()` waits for `file_sink` to finish,
    closes it and writes the `.sigmf-meta` (with the data file's hash).

    Its stream input (the recorded stream, thinned by a stock keep_one_in_n: nothing is done with
    it) keeps it in the flowgraph when `frames` is unconnected and makes it stop after the stream
    ends, not when its message neighbours do.
    """

    def __init__(
        self,
        path: str,
        samp_rate: float,
        center_freq: float,
        generator: str,
        description: str = "",
        hw: str = "",
        author: str = "",
        dtype: str = "cf32_le",
        file_sink=None,
    ) -> None:
        gr.sync_block.__init__(
            self, name="rkdsc_ota_sigmf_annotator", in_sig=[np.complex64], out_sig=None
        )
        self._args = (str(path), dtype, float(samp_rate), float(center_freq))
        self._generator, self._text = generator, (description, hw, author)
        self._file_sink = file_sink
        self._lock = threading.Lock()
        self.annotations: list[dict] = []
        self._drops = DropCounter(log, "sigmf_sink")
        self.message_port_register_in(PORT_IN)
        self.set_msg_handler(PORT_IN, self._handle)

    @guarded
    def _handle(self, msg: pmt.pmt_t) -> None:
        meta, _ = split_pdu(msg)
        ann = annotation(pmt.to_python(meta), self._generator)
        if ann is not None:
            with self._lock:
                self.annotations.append(ann)

    def work(self, input_items, output_items) -> int:
        return len(input_items[0])

    def _close_data(self) -> None:
        """Each block's stop() runs when its own thread ends, so the file sink may still be
        writing: wait until it is done (a finished graph) or has taken nothing for SETTLE_S
        (an interrupted one), then close it: the file holds its final bytes."""
        sink = self._file_sink
        if sink is None:
            return
        last, since = -1, time.monotonic()
        while sink.detail() is not None and not sink.detail().done():
            n = sink.nitems_read(0)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since > SETTLE_S:
                break
            time.sleep(0.02)
        sink.close()

    def write(self) -> Path | None:
        path, dtype, rate, freq = self._args
        try:
            with self._lock:
                anns = list(self.annotations)
            recorder = "gr-rkdsc (GNU Radio " + gr.version() + ")"
            return write_meta(path, dtype, rate, freq, anns, *self._text, recorder=recorder)
        except Exception as exc:  # noqa: BLE001 - stop() must not raise (GNURADIO.md)
            log.error("sigmf_sink: cannot write the metadata of %s: %s", path, exc)
            return None

    def stop(self) -> bool:
        self._close_data()
        self.write()
        return True


class ota_sigmf_sink(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Record a complex stream as SigMF: `<path>.sigmf-data` (blocks.file_sink; cf32_le, or
    ci16_le through complex_to_interleaved_short at full scale 32767, saturating) and, when the
    flowgraph stops, `<path>.sigmf-meta` with `core:sha512` and one annotation per frame PDU seen
    on `frames`.

    Args:
        path: recording base name (".sigmf-data"/".sigmf-meta" appended; either may be given).
        samp_rate, center_freq: recorded into the metadata (Hz).
        generator: annotation `core:generator` (e.g. "rkdsc ota_tx").
        description, hw, author: `core:description`, `core:hw`, `core:author` (left out if "").
        datatype: "cf32_le" or "ci16_le".
    """

    def __init__(
        self,
        path: str,
        samp_rate: float = 2e6,
        center_freq: float = 915e6,
        generator: str = "rkdsc",
        description: str = "",
        hw: str = "",
        author: str = "",
        datatype: str = "cf32_le",
    ) -> None:
        init_hier(self, "rkdsc_ota_sigmf_sink", stream_in=True, stream_out=False)
        if datatype not in RECORD_DATATYPES:
            raise ValueError(f"datatype {datatype!r}: records {', '.join(RECORD_DATATYPES)}")
        data, _ = sigmf_paths(path)
        data.parent.mkdir(parents=True, exist_ok=True)
        self.data_path = data
        if datatype == "ci16_le":
            self.convert = blocks.complex_to_interleaved_short(False, 32767.0)
            self.file = blocks.file_sink(gr.sizeof_short, str(data), False)
            self.connect(self, self.convert, self.file)
        else:
            self.file = blocks.file_sink(gr.sizeof_gr_complex, str(data), False)
            self.connect(self, self.file)
        self.file.set_unbuffered(True)  # on disk after every work call: readable while running
        self.annotator = ota_sigmf_annotator(
            str(path),
            samp_rate,
            center_freq,
            generator,
            description,
            hw,
            author,
            datatype,
            self.file,
        )
        self.thin = blocks.keep_one_in_n(gr.sizeof_gr_complex, THIN)
        self.connect(self, self.thin, self.annotator)
        self.message_port_register_hier_in("frames")
        self.msg_connect(self, "frames", self.annotator, "in")

    def annotations(self) -> list[dict]:
        return list(self.annotator.annotations)


def _to_complex(dtype: Datatype) -> tuple[int, list]:
    """(file item size, stock blocks turning those items into complex samples at ±1.0 full
    scale): byte swap for big-endian files (on a little-endian host), then the conversion; two
    floats per item make one gr_complex (GNU Radio checks only item sizes)."""
    rail = np.dtype(dtype.rail)
    if dtype.name == "cf32_le":
        return gr.sizeof_gr_complex, []
    chain = [blocks.endian_swap(rail.itemsize)] if rail.byteorder == ">" else []
    if rail.kind == "f":
        chain.append(blocks.stream_to_vector(gr.sizeof_float, 2))
    elif rail.kind == "i" and rail.itemsize == 2:
        chain.append(blocks.interleaved_short_to_complex(False, False, dtype.full_scale))
    elif rail.kind == "i":
        chain.append(blocks.interleaved_char_to_complex(False, dtype.full_scale))
    else:  # cu8
        chain += [
            blocks.uchar_to_float(),
            blocks.add_const_ff(-dtype.centre),
            blocks.multiply_const_ff(1.0 / dtype.full_scale),
            blocks.stream_to_vector(gr.sizeof_float, 2),
        ]
    return rail.itemsize, chain


class ota_sigmf_source(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Replay a SigMF recording (cf32_le/be, ci16_le/be, ci8, cu8) or a raw capture as a complex
    stream at ±1.0 full scale (blocks.file_source and stock conversion blocks).

    Args:
        path: recording base name, .sigmf-meta or .sigmf-data; or a raw file (.cs8, .cu8, ...).
        repeat: loop the file.
        datatype: "" (from the metadata, or a raw file's suffix) or a SigMF datatype; one that
            contradicts the metadata is an error.
        samp_rate: a raw file's sample rate (S/s); 0 = from the metadata.

    Attributes `samp_rate`, `center_freq`, `datatype` and `annotations` come from the metadata.
    """

    def __init__(
        self, path: str, repeat: bool = False, datatype: str = "", samp_rate: float = 0.0
    ) -> None:
        init_hier(self, "rkdsc_ota_sigmf_source", stream_in=False, stream_out=True)
        rec = open_recording(path, datatype, samp_rate or None)
        self.samp_rate, self.center_freq = rec.samp_rate, rec.center_freq
        self.datatype, self.annotations = rec.dtype.name, rec.annotations
        item, chain = _to_complex(rec.dtype)
        self.file = blocks.file_source(item, str(rec.data), bool(repeat))
        self.chain = chain
        self.connect(self.file, *chain, self)
