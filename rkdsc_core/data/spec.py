"""The dataset spec a bundle carries (DESIGN.md §4): name, image size, channels, normalisation and
class names. Eval, the loopbacks, `image_source`, the demo and tx/rx load their images through it,
so `--bundle` and `--data-root` are all a user gives, and data that do not fit the bundle fail
with one line instead of being scored silently wrong (issue 20).
"""

from __future__ import annotations

from dataclasses import dataclass

from rkdsc_core.data.datasets import FMNIST_CLASSES, ImageArrays, load_dataset
from rkdsc_core.data.subsets import SUBSET_SEED
from rkdsc_core.data.transforms import NORMALISATION, Normalisation
from rkdsc_core.errors import RkdscError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: What a manifest may leave out, by dataset name: (image size, channels, class names). Older
#: manifests fill missing fields from here; an ImageFolder tree has no native size.
NATIVE = {
    "fmnist": ((28, 28), 1, FMNIST_CLASSES),
    "fmnist_subset": ((28, 28), 1, FMNIST_CLASSES),
    "cifar10": ((32, 32), 3, CIFAR10_CLASSES),
    "cifar100": ((32, 32), 3, None),
    "imagefolder": (None, 3, None),
}


@dataclass(frozen=True)
class DatasetSpec:
    """What images a bundle expects: `uint8 [N, H, W, C]` with `image_size = (H, W)`,
    `channels = C`, normalised with `mean` / `std` per channel; labels index `classes`."""

    name: str
    image_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    @classmethod
    def from_manifest(cls, d: dict) -> DatasetSpec:
        """The manifest's `dataset` mapping; a missing field defaults from the dataset name
        (one-line error when neither gives it)."""
        name = d.get("name")
        if name not in NATIVE:
            raise RkdscError(f"bundle dataset '{name}' unknown (known: {', '.join(NATIVE)})")
        size, channels, classes = NATIVE[name]
        mean, std = NORMALISATION[name]
        size = d.get("image_size") or size
        classes = d.get("classes") or classes
        if size is None or classes is None:
            missing = "image_size" if size is None else "classes"
            raise RkdscError(f"bundle dataset spec ({name}) has no {missing}: re-export the bundle")
        size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        return cls(
            name,
            size,
            int(d.get("channels") or channels),
            tuple(float(m) for m in d.get("mean") or mean),
            tuple(float(s) for s in d.get("std") or std),
            tuple(str(c) for c in classes),
        )

    @classmethod
    def of(cls, data: ImageArrays) -> DatasetSpec:
        """The spec of loaded images (what export writes into the manifest)."""
        mean, std = NORMALISATION[data.name]
        h, w, c = data.images.shape[1:]
        return cls(data.name, (int(h), int(w)), int(c), mean, std, tuple(data.classes))

    def to_manifest(self) -> dict:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "image_size": list(self.image_size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @property
    def norm(self) -> Normalisation:
        return Normalisation(self.mean, self.std)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image at the numpy boundary."""
        return (*self.image_size, self.channels)

    def describe(self) -> str:
        h, w, c = self.shape
        return f"{h}x{w}x{c}, {len(self.classes)} classes"

    def check(self, data: ImageArrays, where: str = "") -> ImageArrays:
        """`data` unchanged when its image shape and class names are the spec's; else a one-line
        `RkdscError` naming both."""
        h, w, c = data.images.shape[1:]
        got = DatasetSpec(data.name, (h, w), c, self.mean, self.std, tuple(data.classes))
        if got.shape != self.shape or got.classes != self.classes:
            what = "image size" if got.shape != self.shape else "classes"
            raise RkdscError(
                f"{data.name} {data.split} images{f' at {where}' if where else ''} "
                f"({got.describe()}) do not match the bundle's dataset ({self.describe()}): "
                f"{what} differ"
            )
        return data

    def load(
        self,
        split: str,
        root: str | None = None,
        n: int | None = None,
        seed: int = SUBSET_SEED,
    ) -> ImageArrays:
        """The `split` of this dataset at the spec's size (from `root` for CIFAR / ImageFolder),
        `n` of them as the seeded class-balanced subset every limit uses, checked against the
        spec. A one-line error when `n` exceeds the split."""
        size = self.image_size[0] if self.image_size[0] == self.image_size[1] else None
        data = load_dataset(self.name, split, root, image_size=size)
        if n is not None and not 1 <= n <= len(data):
            raise RkdscError(f"--n {n}: the {self.name} {split} split has {len(data)} images")
        return self.check(data, root or "").subset(n, seed)
