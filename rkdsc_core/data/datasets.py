"""Datasets as in-memory uint8 arrays: Fashion-MNIST (Debian), CIFAR-10/100 and ImageFolder (local).

Images are `uint8 [N, H, W, C]`, labels `int64 [N]` — the numpy runtime boundary of DESIGN.md §2.
Nothing downloads unless `download=True` is asked for explicitly (CIFAR only).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rkdsc_core.data.subsets import SUBSET_SEED, balanced_subset
from rkdsc_core.errors import RkdscError
from rkdsc_core.registry import Registry

log = logging.getLogger(__name__)

FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SUBSET_FILE = Path(__file__).with_name("fmnist_subset") / "fmnist_subset.npz"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageArrays:
    """A split held in memory: `images uint8 [N,H,W,C]`, `labels int64 [N]`, class names, and
    `index int64 [N]`: each image's index in the whole split (0..N-1 for a whole split; reports
    record it), of `total` images."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    index: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    total: int = -1  # images in the whole split (-1: len(labels))

    def __post_init__(self) -> None:
        if self.index is None:
            object.__setattr__(self, "index", np.arange(len(self.labels), dtype=np.int64))
        if self.total < 0:
            object.__setattr__(self, "total", len(self.labels))
        if len(self.index) != len(self.labels) or len(self.images) != len(self.labels):
            raise ValueError("images, labels and index must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, rows: np.ndarray) -> ImageArrays:
        """The images at positions `rows int64 [M]` of this array (their `index` kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageArrays(
            self.name,
            self.split,
            self.images[rows],
            self.labels[rows],
            self.classes,
            self.index[rows],
            self.total,
        )

    def subset(self, n: int | None, seed: int = SUBSET_SEED) -> ImageArrays:
        """A seeded class-balanced subset of `n` images in index order (`subsets.balanced_subset`;
        all when `n` is None or at least N): what every size limit selects."""
        if n is None or n >= len(self):
            return self
        return self.select(balanced_subset(self.labels, n, seed))


def held_out_count(n: int, fraction: float, limit: int | None = None) -> int:
    """How many images at the end of a training split of `n` are held out for validation:
    `fraction`·n, at most `limit` (stage 2 and the baselines: data.val_fraction, stage2.val_limit;
    stage 1 and the teacher hold out the whole fraction, a superset of those)."""
    count = int(n * fraction)
    return count if limit is None else min(int(limit), count)


def held_out(data: ImageArrays, fraction: float, limit: int | None = None) -> ImageArrays:
    """The last `held_out_count` images of a training split, with their indices: the images
    stage 2 held out before issue 20's stratified split (`subsets.validation_split`), so those
    of the shipped default bundle, on which its rate table and IR stopping rule are measured."""
    n_val = held_out_count(len(data), fraction, limit)
    rows = np.arange(len(data) - n_val, len(data))
    return dataclasses.replace(data.select(rows), split="validation")


def cache_dir() -> Path:
    """Per-user cache (`$RKDSC_CACHE`, else `$XDG_CACHE_HOME/rkdsc`, else `~/.cache/rkdsc`)."""
    if os.environ.get("RKDSC_CACHE"):
        return Path(os.environ["RKDSC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rkdsc"


def fmnist_source_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder holding the four Fashion-MNIST `.gz` (or raw) idx files; one-line error if absent."""
    src = Path(root) if root else Path(os.environ.get("RKDSC_FMNIST_DIR", FMNIST_SYSTEM_DIR))
    ok = all((src / f).exists() or (src / f"{f}.gz").exists() for f in FMNIST_FILES)
    if not ok:
        raise RkdscError(
            f"Fashion-MNIST not found in {src} (expected {FMNIST_FILES[0]}.gz and the other three "
            "idx files): run 'sudo apt-get install dataset-fashion-mnist' or set data.root"
        )
    return src


def _prepare_fmnist(src: Path) -> Path:
    """Decompress into torchvision's layout `<cache>/FashionMNIST/raw/` (Debian's .gz files are
    recompressed, so torchvision's own checksum check fails); returns the torchvision root."""
    root = cache_dir() / "fashion-mnist"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FMNIST_FILES:
        dst = raw / name
        if dst.exists():
            continue
        tmp = dst.with_suffix(".tmp")
        if (src / name).exists():
            shutil.copyfile(src / name, tmp)
        else:
            with gzip.open(src / f"{name}.gz", "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        tmp.replace(dst)
    return root


def load_fmnist(split: str, root: str | os.PathLike | None = None) -> ImageArrays:
    """Fashion-MNIST `split` ('train' 60k | 'test' 10k) as `uint8 [N,28,28,1]`."""
    from torchvision.datasets import FashionMNIST

    tv_root = _prepare_fmnist(fmnist_source_dir(root))
    ds = FashionMNIST(str(tv_root), train=(split == "train"), download=False)
    images = ds.data.numpy()[..., None].astype(np.uint8)
    labels = ds.targets.numpy().astype(np.int64)
    return ImageArrays("fmnist", split, images, labels, FMNIST_CLASSES)


def load_fmnist_subset(split: str) -> ImageArrays:
    """The small committed Fashion-MNIST subset (for unit tests; Zalando, MIT licence)."""
    with np.load(SUBSET_FILE) as z:
        return ImageArrays(
            "fmnist_subset", split, z[f"{split}_images"], z[f"{split}_labels"], FMNIST_CLASSES
        )


def load_cifar(name: str, split: str, root: str | None, download: bool = False) -> ImageArrays:
    """CIFAR-10/100 from `root` in torchvision's layout, `uint8 [N,32,32,3]`."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, folder = (
        (CIFAR10, "cifar-10-batches-py")
        if name == "cifar10"
        else (
            CIFAR100,
            "cifar-100-python",
        )
    )
    if root is None:
        raise RkdscError(
            f"{name} needs its root: --data-root DIR (training: data.root=DIR), a folder holding "
            f"{folder}/"
        )
    if not download and not (Path(root) / folder).is_dir():
        raise RkdscError(
            f"{name} not found: expected {Path(root) / folder}/ (torchvision layout); put the "
            f"extracted archive there, or add data.download=true to fetch it once"
        )
    ds = cls(root, train=(split == "train"), download=download)
    return ImageArrays(
        name,
        split,
        np.asarray(ds.data, np.uint8),
        np.asarray(ds.targets, np.int64),
        tuple(ds.classes),
    )


def load_imagefolder(split: str, root: str | None, image_size: int | None) -> ImageArrays:
    """An ImageFolder tree `root/{train,test}/<class>/<image>`, resized to `image_size` (RGB)."""
    from torchvision.datasets import ImageFolder

    if root is None:
        raise RkdscError(
            "imagefolder needs its root: --data-root DIR (training: data.root=DIR) with "
            "DIR/train/<class>/*.png and DIR/test"
        )
    folder = Path(root) / split
    if split == "test" and not folder.is_dir() and (Path(root) / "val").is_dir():
        folder = Path(root) / "val"
    if not folder.is_dir():
        raise RkdscError(
            f"imagefolder split '{split}' not found: expected {folder}/<class>/<image>"
        )
    size = image_size or 64
    ds = ImageFolder(str(folder))
    images = np.stack(
        [np.asarray(ds.loader(p).convert("RGB").resize((size, size))) for p, _ in ds.samples]
    ).astype(np.uint8)
    return ImageArrays(
        "imagefolder", split, images, np.asarray(ds.targets, np.int64), tuple(ds.classes)
    )


def load_dataset(
    name: str,
    split: str,
    root: str | None = None,
    download: bool = False,
    image_size: int | None = None,
    limit: int | None = None,
    seed: int = SUBSET_SEED,
) -> ImageArrays:
    """One door to every dataset: `name` in `list_datasets()`, `split` in ('train', 'test');
    `limit` keeps a seeded class-balanced subset of that many images (`ImageArrays.subset`)."""
    if split not in SPLITS:
        raise RkdscError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    loader = DATASETS.get(name)  # an unknown name: a one-line error listing the registered ones
    return loader(split=split, root=root, download=download, image_size=image_size).subset(
        limit, seed
    )


def load_configured(data_cfg, split: str) -> ImageArrays:
    """The `split` as a run's `data` config section (`rkdsc_core.config.DataConfig`) selects it:
    name, root, download, `image_size`, and `train_limit` / `test_limit` as a seeded
    class-balanced subset. Every training stage loads its images through here."""
    limit = data_cfg.train_limit if split == "train" else data_cfg.test_limit
    return load_dataset(
        data_cfg.name, split, data_cfg.root, data_cfg.download, data_cfg.image_size, limit
    )


#: The dataset registry: name → loader(*, split, root, download, image_size) → ImageArrays (each
#: takes the keywords it needs). A new dataset is an entry here plus its loader.
DATASETS: Registry[Callable[..., ImageArrays]] = Registry(
    "dataset",
    {
        "fmnist": lambda split, root, **_: load_fmnist(split, root),
        "fmnist_subset": lambda split, **_: load_fmnist_subset(split),
        "cifar10": lambda split, root, download, **_: load_cifar("cifar10", split, root, download),
        "cifar100": lambda split, root, download, **_: load_cifar(
            "cifar100", split, root, download
        ),
        "imagefolder": lambda split, root, image_size, **_: load_imagefolder(
            split, root, image_size
        ),
    },
)


def list_datasets() -> tuple[str, ...]:
    """The registered dataset names, in registration order."""
    return DATASETS.names()
