"""IQ recordings in SigMF (v1.2): a `.sigmf-data` file of cf32_le samples written and read by GNU
Radio's file blocks, and a `.sigmf-meta` JSON written here to the specification (global: datatype,
sample rate, version; one capture with the centre frequency; one annotation per frame). No
`core:sha512`: the metadata is written when the flowgraph stops, possibly before the file sink has
flushed its last samples.

Frame annotations come from PDUs carrying `sample_start` / `sample_count` metadata: `ota_tx`'s
`frames` port at a transmitter, `ota_rx`'s symbol PDUs at a receiver. Keys of our own use the
`rkdsc:` namespace, declared in `core:extensions`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
from pathlib import Path

import pmt
from gnuradio import blocks, gr

from rkdsc_gr._pdu import PORT_IN, DropCounter, guarded, split_pdu

log = logging.getLogger(__name__)

SIGMF_VERSION = "1.2.0"
DATATYPE = "cf32_le"
EXTENSION = {"name": "rkdsc", "version": "0.1.0", "optional": True}
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


def sigmf_paths(path: str | Path) -> tuple[Path, Path]:
    """(data, meta) paths of a recording named by its base, or by either file."""
    p = Path(path)
    if p.suffix in (".sigmf-data", ".sigmf-meta"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".sigmf-data"), p.with_name(p.name + ".sigmf-meta")


def annotation(meta: dict, generator: str) -> dict | None:
    """One SigMF annotation from a frame's metadata dict (None without sample_start/count)."""
    if "sample_start" not in meta or "sample_count" not in meta:
        return None
    start = int(meta["sample_start"])
    count = int(meta["sample_count"]) + min(start, 0)  # a burst cut at the file's start
    ann = {"core:sample_start": max(start, 0), "core:sample_count": max(count, 0)}
    if "frame_index" in meta:
        ann["core:label"] = f"frame {int(meta['frame_index'])}"
    ann["core:generator"] = generator
    for key, out in _FIELDS.items():
        if key in meta:
            value = meta[key]
            ann[out] = float(value) if isinstance(value, float) else int(value)
    return ann


def write_meta(
    path: str | Path,
    samp_rate: float,
    center_freq: float,
    annotations: list[dict],
    description: str = "",
    hw: str = "",
    datetime: str | None = None,
) -> Path:
    """Write `<base>.sigmf-meta` (for `<base>.sigmf-data`); returns the meta path."""
    _, meta_path = sigmf_paths(path)
    glob = {
        "core:datatype": DATATYPE,
        "core:sample_rate": float(samp_rate),
        "core:version": SIGMF_VERSION,
        "core:recorder": "gr-rkdsc (GNU Radio " + gr.version() + ")",
        "core:extensions": [EXTENSION],
    }
    if description:
        glob["core:description"] = description
    if hw:
        glob["core:hw"] = hw
    capture = {"core:sample_start": 0, "core:frequency": float(center_freq)}
    capture["core:datetime"] = datetime or _dt.datetime.now(_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    anns = sorted(annotations, key=lambda a: a["core:sample_start"])
    doc = {"global": glob, "captures": [capture], "annotations": anns}
    meta_path.write_text(json.dumps(doc, indent=2) + "\n")
    return meta_path


def read_meta(path: str | Path) -> dict:
    """The parsed `.sigmf-meta` of a recording; ValueError unless it is cf32_le (what we read)."""
    _, meta_path = sigmf_paths(path)
    doc = json.loads(meta_path.read_text())
    dtype = doc.get("global", {}).get("core:datatype")
    if dtype != DATATYPE:
        raise ValueError(f"{meta_path}: core:datatype {dtype!r}, only {DATATYPE} is supported")
    return doc


class ota_sigmf_annotator(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Collects frame annotations from PDUs on `in` and writes the `.sigmf-meta` in `stop()`."""

    def __init__(
        self,
        path: str,
        samp_rate: float,
        center_freq: float,
        generator: str,
        description: str = "",
        hw: str = "",
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_ota_sigmf_annotator", in_sig=None, out_sig=None)
        self._args = (str(path), float(samp_rate), float(center_freq))
        self._generator, self._description, self._hw = generator, description, hw
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

    def write(self) -> Path | None:
        path, rate, freq = self._args
        try:
            with self._lock:
                anns = list(self.annotations)
            return write_meta(path, rate, freq, anns, self._description, self._hw)
        except OSError as exc:
            log.error("sigmf_sink: cannot write the metadata of %s: %s", path, exc)
            return None

    def stop(self) -> bool:
        self.write()
        return True


class ota_sigmf_sink(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Record a complex stream as SigMF: `<path>.sigmf-data` (blocks.file_sink, cf32_le) and, when
    the flowgraph stops, `<path>.sigmf-meta` with one annotation per frame PDU seen on `frames`.

    Args:
        path: recording base name (".sigmf-data"/".sigmf-meta" appended; either may be given).
        samp_rate, center_freq: recorded into the metadata (Hz).
        generator: annotation `core:generator` (e.g. "rkdsc ota_tx").
        description, hw: `core:description`, `core:hw`.
    """

    def __init__(
        self,
        path: str,
        samp_rate: float = 2e6,
        center_freq: float = 915e6,
        generator: str = "rkdsc",
        description: str = "",
        hw: str = "",
    ) -> None:
        gr.hier_block2.__init__(
            self,
            "rkdsc_ota_sigmf_sink",
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
            gr.io_signature(0, 0, 0),
        )
        data, _ = sigmf_paths(path)
        data.parent.mkdir(parents=True, exist_ok=True)
        self.data_path = data
        self.file = blocks.file_sink(gr.sizeof_gr_complex, str(data), False)
        self.file.set_unbuffered(True)  # on disk after every work call: readable while running
        self.annotator = ota_sigmf_annotator(
            str(path), samp_rate, center_freq, generator, description, hw
        )
        self.message_port_register_hier_in("frames")
        self.connect(self, self.file)
        self.msg_connect(self, "frames", self.annotator, "in")

    def annotations(self) -> list[dict]:
        return list(self.annotator.annotations)


class ota_sigmf_source(gr.hier_block2):  # noqa: N801 - GNU Radio block naming
    """Replay a SigMF recording (cf32_le) as a complex stream (blocks.file_source).

    Attributes `samp_rate`, `center_freq` and `annotations` come from the metadata.
    """

    def __init__(self, path: str, repeat: bool = False) -> None:
        gr.hier_block2.__init__(
            self,
            "rkdsc_ota_sigmf_source",
            gr.io_signature(0, 0, 0),
            gr.io_signature(1, 1, gr.sizeof_gr_complex),
        )
        data, _ = sigmf_paths(path)
        doc = read_meta(path)
        self.samp_rate = float(doc["global"].get("core:sample_rate", 0.0))
        caps = doc.get("captures") or [{}]
        self.center_freq = float(caps[0].get("core:frequency", 0.0))
        self.annotations = doc.get("annotations", [])
        self.file = blocks.file_source(gr.sizeof_gr_complex, str(data), bool(repeat))
        self.connect(self.file, self)
