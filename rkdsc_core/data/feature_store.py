"""Teacher-feature store (PAPER.md §2): teacher embeddings and logits computed once, memory-mapped.

An entry is keyed by (dataset, split, image count and content hash, teacher name and weights hash,
view transform) and lives in `<root>/<dataset>/<split>/<digest>/` as `embeddings.npy float32
[V, N, D]`, `logits.npy float32 [V, N, C]`, `views.npy int8 [V, N, 3]` and `manifest.json`
(written last; a folder without it is never served). Changing any key part changes the digest,
so a stale entry is never read; stale folders can simply be deleted.

Augmentation trade-off: view 0 is the clean image; views 1..V-1 are fixed random shifts (±pad px)
and horizontal flips whose parameters are stored, so a student can be shown exactly the image
the teacher saw (`apply_view`). V views cost V teacher passes once and V× the disk, instead of a
teacher pass per batch per epoch; the price is a finite set of augmentations.

Under torchrun an entry is built once, sharded: rank 0 decides whether it exists and creates the
arrays, every rank fills its contiguous part of the images, rank 0 publishes it, and all ranks
then read it (the store root must be on a filesystem every rank sees).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rkdsc_core import distributed
from rkdsc_core.data.targets import TeacherTargets
from rkdsc_core.data.transforms import Normalisation, to_tensor
from rkdsc_core.errors import RkdscError

log = logging.getLogger(__name__)

STORE_FORMAT = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class StoreKey:
    """Everything an entry depends on; any change gives a different digest (a new entry)."""

    dataset: str
    split: str
    n: int
    data_sha256: str  # images and labels, in load_dataset order
    teacher: str  # teacher name (preset or timm name)
    teacher_sha256: str  # Teacher.fingerprint(): spec + weights
    transform: str  # the views, see view_transform_id

    def digest(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]


def data_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of `images uint8 [N,H,W,C]` (shape included) and `labels int64 [N]`."""
    h = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    h.update(np.ascontiguousarray(images).data)
    h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()


def view_transform_id(views: int, pad: int, seed: int, norm: Normalisation) -> str:
    """Names the view transform: the input normalisation, and the augmentation when views > 1."""
    base = f"norm(mean={list(norm.mean)},std={list(norm.std)})"
    if views <= 1:
        return base + ";clean"
    return base + f";clean+{views - 1}x(shift±{pad}px,hflip;replicate-pad;seed={seed})"


def view_params(n: int, views: int, pad: int, seed: int) -> np.ndarray:
    """`int8 [views, n, 3]` of (dy, dx, flip) per view and image; view 0 is the identity."""
    out = np.zeros((views, n, 3), np.int8)
    if views > 1:
        rng = np.random.default_rng(seed)
        out[1:, :, :2] = rng.integers(-pad, pad + 1, size=(views - 1, n, 2))
        out[1:, :, 2] = rng.integers(0, 2, size=(views - 1, n))
    return out


def apply_view(x: torch.Tensor, params: np.ndarray | torch.Tensor, pad: int) -> torch.Tensor:
    """Shift `x float [B,C,H,W]` by (dy, dx) px (edges replicated) and h-flip where `flip`.

    `params int [B, 3]` rows (dy, dx, flip): output pixel (i, j) is input pixel (i+dy, j+dx).
    """
    p = torch.from_numpy(np.array(params, dtype=np.int64))
    if p.ndim != 2 or p.shape != (x.shape[0], 3):
        raise ValueError(f"view params must be [B, 3] for B={x.shape[0]}, got {tuple(p.shape)}")
    if p.numel() and int(p[:, :2].abs().max()) > pad:
        raise ValueError(f"view shift exceeds pad={pad}")
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    rows = pad + p[:, 0].view(b, 1, 1, 1) + torch.arange(h).view(1, 1, h, 1)
    out = torch.gather(padded, 2, rows.expand(b, c, h, w + 2 * pad))
    cols = pad + p[:, 1].view(b, 1, 1, 1) + torch.arange(w).view(1, 1, 1, w)
    out = torch.gather(out, 3, cols.expand(b, c, h, w))
    flip = p[:, 2].bool()
    if flip.any():
        out[flip] = out[flip].flip(-1)
    return out


@dataclass(frozen=True)
class StoreEntry:
    """One stored entry: read-only memmaps `embeddings [V,N,D]`, `logits [V,N,C]`,
    `views int8 [V,N,3]` (the view parameters, see `apply_view`)."""

    path: Path
    key: StoreKey
    embeddings: np.ndarray
    logits: np.ndarray
    views: np.ndarray
    pad: int

    @property
    def num_views(self) -> int:
        return self.embeddings.shape[0]

    def __len__(self) -> int:
        return self.embeddings.shape[1]

    def targets(self, view: int = 0) -> TeacherTargets:
        """Teacher outputs for view `view` (0 = clean) of images 0..N-1 (memmap slices)."""
        if not 0 <= view < self.num_views:
            raise IndexError(f"view {view} not stored (entry has {self.num_views})")
        return TeacherTargets(self.embeddings[view], self.logits[view])


class FeatureStore:
    """Content-addressed teacher outputs under `root` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def entry_dir(self, key: StoreKey) -> Path:
        return self.root / key.dataset / key.split / key.digest()

    def lookup(self, key: StoreKey) -> StoreEntry | None:
        """The complete entry for `key`, or None (missing, partial or not matching the key)."""
        path = self.entry_dir(key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("format") != STORE_FORMAT or manifest.get("key") != dataclasses.asdict(key):
            log.warning("feature store: %s does not match its key; ignoring it", path)
            return None
        try:
            emb = np.load(path / "embeddings.npy", mmap_mode="r")
            logits = np.load(path / "logits.npy", mmap_mode="r")
            views = np.load(path / "views.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            log.warning("feature store: %s unreadable (%s); rebuilding", path, exc)
            return None
        shape = manifest["shape"]
        if emb.shape != (shape["views"], key.n, shape["dim"]) or logits.shape[:2] != emb.shape[:2]:
            log.warning("feature store: %s has wrong array shapes; rebuilding", path)
            return None
        return StoreEntry(path, key, emb, logits, views, int(manifest["pad"]))

    def make_key(
        self,
        teacher,
        dataset: str,
        split: str,
        images: np.ndarray,
        labels: np.ndarray,
        norm: Normalisation,
        views: int = 1,
        pad: int = 2,
        seed: int = 0,
    ) -> StoreKey:
        """The key of `teacher` (a `Teacher`) on these images with `views` views (≥ 1)."""
        if views < 1:
            raise ValueError("views must be ≥ 1 (view 0 is the clean image)")
        return StoreKey(
            dataset,
            split,
            len(images),
            data_fingerprint(images, labels),
            teacher.spec.name,
            teacher.fingerprint(),
            view_transform_id(views, pad, seed, norm),
        )

    def get_or_build(
        self,
        teacher,
        dataset: str,
        split: str,
        images: np.ndarray,
        labels: np.ndarray,
        norm: Normalisation,
        views: int = 1,
        pad: int = 2,
        seed: int = 0,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
    ) -> StoreEntry:
        """Serve the entry for these inputs, computing it first when absent."""
        key = self.make_key(teacher, dataset, split, images, labels, norm, views, pad, seed)
        entry = self.lookup(key) if distributed.is_main() else None
        if distributed.broadcast_object(entry is not None):  # rank 0 decides for every rank
            entry = entry or self._lookup_shared(key)
            log.info("feature store: hit %s", entry.path)
            return entry
        return self.build(key, teacher, images, norm, views, pad, seed, batch_size, device)

    def _lookup_shared(self, key: StoreKey) -> StoreEntry:
        entry = self.lookup(key)
        if entry is None:
            raise RkdscError(
                f"rank {distributed.rank()}: feature-store entry {self.entry_dir(key)} written by "
                "rank 0 is not visible here: put store.root (and out_dir) on a filesystem that "
                "every node shares"
            )
        return entry

    @torch.inference_mode()
    def build(
        self,
        key: StoreKey,
        teacher,
        images: np.ndarray,
        norm: Normalisation,
        views: int,
        pad: int,
        seed: int,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
    ) -> StoreEntry:
        """Run `teacher` over every view of `images uint8 [N,H,W,C]` and store the outputs
        (under torchrun: each rank over its part of the images, see the module docstring)."""
        final = self.entry_dir(key)
        main, sharded = distributed.is_main(), distributed.is_active()
        tmp = final.with_name(f"{final.name}.tmp-" + ("ranks" if sharded else str(os.getpid())))
        n, t0 = len(images), time.time()
        params = view_params(n, views, pad, seed)
        dim, classes = teacher.spec.embed_dim, teacher.spec.num_classes
        emb, logits = _open_arrays(tmp, params, (views, n, dim), (views, n, classes))
        was_training = teacher.training
        teacher.eval()
        desc = f"teacher store {key.dataset}/{key.split}"
        _run_teacher(teacher, images, norm, params, pad, batch_size, device, (emb, logits), desc)
        teacher.train(was_training)
        emb.flush()
        logits.flush()
        del emb, logits
        distributed.barrier()  # every part is written
        if not main:
            distributed.barrier()  # rank 0 publishes the entry
            return self._lookup_shared(key)
        manifest = {
            "format": STORE_FORMAT,
            "key": dataclasses.asdict(key),
            "digest": key.digest(),
            "shape": {"views": views, "n": n, "dim": dim, "classes": classes},
            "pad": pad,
            "seed": seed,
            "teacher_spec": teacher.spec.to_dict(),
            "seconds": time.time() - t0,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if final.exists():  # a concurrent or stale build: ours replaces it
            shutil.rmtree(final)
        os.replace(tmp, final)
        log.info(
            "feature store: built %s (%d views × %d images) in %.1f s",
            final,
            views,
            n,
            manifest["seconds"],
        )
        entry = self.lookup(key)
        distributed.barrier()
        assert entry is not None, f"freshly built entry {final} does not load"
        return entry


def _open_arrays(
    tmp: Path, params: np.ndarray, emb_shape: tuple, logits_shape: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Writable memmaps `embeddings.npy`, `logits.npy` in `tmp` (created afresh by rank 0, with
    `views.npy`); under torchrun the other ranks open the arrays rank 0 created."""
    main = distributed.is_main()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        emb = np.lib.format.open_memmap(tmp / "embeddings.npy", "w+", np.float32, emb_shape)
        logits = np.lib.format.open_memmap(tmp / "logits.npy", "w+", np.float32, logits_shape)
        np.save(tmp / "views.npy", params)
    if distributed.is_active():
        if main:
            emb.flush()
            logits.flush()
        distributed.barrier()
        if not main:
            try:
                emb = np.load(tmp / "embeddings.npy", mmap_mode="r+")
                logits = np.load(tmp / "logits.npy", mmap_mode="r+")
            except OSError as exc:
                raise RkdscError(
                    f"rank {distributed.rank()}: cannot open {tmp} created by rank 0 ({exc}): "
                    "put store.root on a filesystem that every node shares"
                ) from None
    return emb, logits


def _run_teacher(
    teacher,
    images: np.ndarray,
    norm: Normalisation,
    params: np.ndarray,
    pad: int,
    batch_size: int,
    device: torch.device | str,
    out: tuple[np.ndarray, np.ndarray],
    desc: str,
) -> None:
    """Fill this rank's part of `out` = (embeddings [V,N,D], logits [V,N,C]) with the teacher's
    outputs on every view (`params` [V,N,3]) of `images`."""
    emb, logits = out
    lo, hi = distributed.part_bounds(len(images))
    starts = range(lo, hi, batch_size)
    bar = tqdm(
        total=len(params) * len(starts),
        desc=desc,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )
    for v in range(len(params)):
        for s in starts:
            stop = min(s + batch_size, hi)
            x = to_tensor(images[s:stop], norm)
            if v > 0:
                x = apply_view(x, params[v, s:stop], pad)
            e, lg = teacher(x.to(device))
            emb[v, s : s + len(x)] = e.float().cpu().numpy()
            logits[v, s : s + len(x)] = lg.float().cpu().numpy()
            bar.update()
    bar.close()
