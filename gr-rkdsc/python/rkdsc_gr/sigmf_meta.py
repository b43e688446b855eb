"""SigMF recordings without GNU Radio: the sample datatypes we replay and their scaling, and the
`.sigmf-meta` read, checked, written and hashed through the `sigmf` library (sigmf-python).

Scaling (one rail; the receiver sees the same waveform whatever the datatype): cf32 as is,
ci16 ÷ 32767, ci8 ÷ 127, cu8 (x − 127.5) ÷ 127.5, so ±1.0 is full scale. `sigmf`'s own
`read_samples` divides by 2^15 / 2^7 and centres cu8 on 128 instead: the same waveform within
0.4 %, and the receiver is insensitive to amplitude (its detector, preamble metric, equaliser
and SNR estimate are all ratios); only cu8's centre matters, as a DC offset of half a step.

Frame annotations carry keys of our own in the `rkdsc:` namespace, declared in
`core:extensions`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import numpy as np
import sigmf
from sigmf import error as sigmf_error
from sigmf import schema as sigmf_schema
from sigmf import validate as sigmf_validate

log = logging.getLogger(__name__)

EXTENSION = {"name": "rkdsc", "version": "0.1.0", "optional": True}


@dataclass(frozen=True)
class Datatype:
    """A SigMF complex datatype: `rail` numpy dtype of I and Q; `full_scale` the rail value of
    +1.0 and `centre` that of 0.0."""

    name: str
    rail: str
    full_scale: float = 1.0
    centre: float = 0.0

    @property
    def sample_bytes(self) -> int:
        return 2 * np.dtype(self.rail).itemsize


DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        Datatype("cf32_le", "<f4"),
        Datatype("cf32_be", ">f4"),
        Datatype("ci16_le", "<i2", 32767.0),
        Datatype("ci16_be", ">i2", 32767.0),
        Datatype("ci8", "i1", 127.0),
        Datatype("cu8", "u1", 127.5, 127.5),
    )
}
RECORD_DATATYPES = ("cf32_le", "ci16_le")  # what the SigMF sink writes
# raw captures without metadata: the suffixes hackrf_transfer, rtl_sdr and GNU Radio users give
RAW_SUFFIXES = {
    ".cs8": "ci8",
    ".cu8": "cu8",
    ".cs16": "ci16_le",
    ".sc16": "ci16_le",
    ".cf32": "cf32_le",
    ".fc32": "cf32_le",
    ".cfile": "cf32_le",
}


def datatype(name: str) -> Datatype:
    """The Datatype called `name`; ValueError listing the supported ones."""
    try:
        return DATATYPES[name]
    except KeyError:
        raise ValueError(f"datatype {name!r}: choose from {', '.join(DATATYPES)}") from None


def quantise(x: np.ndarray, dtype: Datatype) -> np.ndarray:
    """complex64 [N] → interleaved I/Q rails [2N] of `dtype.rail`, rounded and saturated as GNU
    Radio's complex_to_interleaved_* blocks do."""
    rails = np.stack([x.real, x.imag], axis=-1).reshape(-1).astype(np.float64)
    rails = rails * dtype.full_scale + dtype.centre
    out = np.dtype(dtype.rail)
    if out.kind in "iu":
        info = np.iinfo(out)
        rails = np.clip(np.rint(rails), info.min, info.max)
    return rails.astype(out)


def dequantise(rails: np.ndarray, dtype: Datatype) -> np.ndarray:
    """Interleaved rails [2N] → complex64 [N]: the numpy twin of the source block's stock chain."""
    r = (rails.astype(np.float32) - np.float32(dtype.centre)) / np.float32(dtype.full_scale)
    return r.reshape(-1, 2).astype(np.float32).view(np.complex64).reshape(-1)


def sigmf_paths(path: str | Path) -> tuple[Path, Path]:
    """(data, meta) paths of a recording named by its base, or by either file."""
    names = sigmf.sigmffile.get_sigmf_filenames(path)
    return names["data_fn"], names["meta_fn"]


def check_meta(doc: object, where: str | Path = "sigmf-meta") -> Datatype:
    """The Datatype of SigMF metadata `doc` (parsed JSON), or ValueError (one line) naming the
    first thing wrong: the library's schema check (types, ranges, required keys, ordering), then
    what a replay needs (a datatype of DATATYPES, one channel, no header/trailing bytes)."""
    try:
        with warnings.catch_warnings():  # an undeclared extension only warns
            warnings.simplefilter("ignore", DeprecationWarning)
            sigmf_validate.validate(doc, sigmf_schema.get_schema())
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "the document"
        raise ValueError(f"{where}: {at}: {' '.join(exc.message.split())[:160]}") from None
    glob = doc["global"]
    name = glob["core:datatype"]
    if name not in DATATYPES:
        raise ValueError(f"{where}: core:datatype {name}: replay reads {', '.join(DATATYPES)}")
    if glob.get("core:num_channels", 1) != 1:
        raise ValueError(f"{where}: core:num_channels {glob['core:num_channels']}: replay reads 1")
    if glob.get("core:trailing_bytes") or any(c.get("core:header_bytes") for c in doc["captures"]):
        raise ValueError(f"{where}: header or trailing bytes in the dataset are not supported")
    return DATATYPES[name]


@dataclass
class Recording:
    """A recording to replay: `data` file of `dtype` samples, its sample rate and centre
    frequency (Hz), and its annotations (SigMF dicts; empty for a raw file)."""

    data: Path
    dtype: Datatype
    samp_rate: float
    center_freq: float
    annotations: list[dict] = field(default_factory=list)

    @property
    def sample_count(self) -> int:
        return self.data.stat().st_size // self.dtype.sample_bytes


def open_recording(
    path: str | Path, dtype: str = "", samp_rate: float | None = None, center_freq: float = 0.0
) -> Recording:
    """A SigMF recording (base name, .sigmf-meta or .sigmf-data), or a raw file of `dtype`
    samples (default from its suffix: .cs8, .cu8, .cs16, .cf32, ...) at `samp_rate`. ValueError
    (one line) for what cannot be replayed; a `dtype` or `samp_rate` contradicting the metadata
    is an error, and a data file that no longer matches `core:sha512` a warning."""
    data, meta = sigmf_paths(path)
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{meta} is not readable JSON ({type(exc).__name__})") from None
        found = check_meta(doc, meta)
        glob = doc["global"]
        if dtype and dtype != found.name:
            raise ValueError(f"--datatype {dtype} contradicts {meta} (core:datatype {found.name})")
        rate = float(glob.get("core:sample_rate", samp_rate or 0.0))
        if samp_rate and rate != samp_rate:
            raise ValueError(f"sample rate {samp_rate:g} contradicts {meta} ({rate:g} S/s)")
        try:
            data_file = sigmf.sigmffile.get_dataset_filename_from_metadata(meta, doc)
            handle = sigmf.SigMFFile(metadata=doc, data_file=data_file, skip_checksum=True)
        except sigmf_error.SigMFError as exc:
            raise ValueError(f"{meta}: {exc}") from None
        if handle.data_file is None:
            raise ValueError(f"{meta}: its dataset {data.name} is missing")
        _check_hash(handle, meta)
        caps = handle.get_captures()
        freq = float(caps[0].get("core:frequency", center_freq)) if caps else center_freq
        return Recording(handle.data_file, found, rate, freq, handle.get_annotations())
    raw = Path(path)
    if not raw.is_file():
        raise ValueError(f"{path}: no such recording (neither {meta.name} nor a raw file)")
    name = dtype or RAW_SUFFIXES.get(raw.suffix.lower(), "")
    if not name:
        raise ValueError(
            f"{raw} has no .sigmf-meta: give its datatype (--datatype {'|'.join(DATATYPES)})"
        )
    if not samp_rate or samp_rate <= 0:
        raise ValueError(f"{raw} has no .sigmf-meta: give its sample rate (--samp-rate)")
    return Recording(raw, datatype(name), float(samp_rate), float(center_freq))


def _check_hash(handle: sigmf.SigMFFile, meta: Path) -> None:
    if handle.get_global_field(sigmf.SHA512_KEY) is None:
        return
    try:
        handle.calculate_hash()
    except sigmf_error.SigMFFileError:
        log.warning("%s: the data file does not match core:sha512 (edited or truncated?)", meta)


def annotation_of(meta: dict, generator: str, fields: dict[str, str]) -> dict | None:
    """One SigMF annotation from a frame's PDU metadata (None without sample_start/count):
    `fields` maps PDU keys to annotation keys; non-finite floats are left out (JSON has none)."""
    if "sample_start" not in meta or "sample_count" not in meta:
        return None
    start = int(meta["sample_start"])
    count = int(meta["sample_count"]) + min(start, 0)  # a burst cut at the file's start
    ann = {sigmf.SAMPLE_START_KEY: max(start, 0), sigmf.SAMPLE_COUNT_KEY: max(count, 0)}
    if "frame_index" in meta:
        ann[sigmf.LABEL_KEY] = f"frame {int(meta['frame_index'])}"
    ann[sigmf.GENERATOR_KEY] = generator
    for key, out in fields.items():
        value = meta.get(key)
        if isinstance(value, float):
            if np.isfinite(value):
                ann[out] = value
        elif value is not None:
            ann[out] = int(value)
    return ann


def write_meta(
    path: str | Path,
    dtype: str,
    samp_rate: float,
    center_freq: float,
    annotations: list[dict],
    description: str = "",
    hw: str = "",
    author: str = "",
    recorder: str = "gr-rkdsc",
    datetime: str | None = None,
) -> Path:
    """Write `<base>.sigmf-meta` through the library, which checks it against the schema and,
    when `<base>.sigmf-data` exists (closed: its final bytes), records `core:sha512`."""
    data, meta_path = sigmf_paths(path)
    glob = {
        sigmf.DATATYPE_KEY: datatype(dtype).name,
        sigmf.SAMPLE_RATE_KEY: float(samp_rate),
        sigmf.RECORDER_KEY: recorder,
        sigmf.EXTENSIONS_KEY: [dict(EXTENSION)],
    }
    for key, value in ((sigmf.DESCRIPTION_KEY, description), (sigmf.HW_KEY, hw)):
        if value:
            glob[key] = value
    if author:
        glob[sigmf.AUTHOR_KEY] = author
    # annotations go in as a sorted list: add_annotation re-sorts on every call (quadratic)
    anns = sorted(annotations, key=lambda a: a[sigmf.SAMPLE_START_KEY])
    handle = sigmf.SigMFFile(metadata={"global": glob, "captures": [], "annotations": anns})
    when = datetime or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    handle.add_capture(0, {sigmf.FREQUENCY_KEY: float(center_freq), sigmf.DATETIME_KEY: when})
    if data.is_file():
        handle.set_data_file(data)  # counts the samples and computes core:sha512
    handle.tofile(meta_path, overwrite=True)  # validates first
    return meta_path


def convert_recording(src: str | Path, dst: str | Path, dtype: str) -> Path:
    """Rewrite recording `src` as `dst` in datatype `dtype` with numpy (the same metadata, new
    datatype and hash); returns the new meta path. For tests and for users' own conversions."""
    rec = open_recording(src)
    _, meta = sigmf_paths(src)
    doc = json.loads(meta.read_text())
    glob, caps = doc["global"], doc["captures"] or [{}]
    rails = np.fromfile(rec.data, dtype=rec.dtype.rail)
    x = dequantise(rails[: len(rails) // 2 * 2], rec.dtype)
    data, _ = sigmf_paths(dst)
    data.parent.mkdir(parents=True, exist_ok=True)
    quantise(x, datatype(dtype)).tofile(data)
    return write_meta(
        dst,
        dtype,
        rec.samp_rate,
        rec.center_freq,
        rec.annotations,
        glob.get(sigmf.DESCRIPTION_KEY, ""),
        glob.get(sigmf.HW_KEY, ""),
        glob.get(sigmf.AUTHOR_KEY, ""),
        glob.get(sigmf.RECORDER_KEY, "gr-rkdsc"),
        caps[0].get(sigmf.DATETIME_KEY),
    )
