"""`rkdsc_image_source`: a dataset split as image PDUs (u8vector H·W·C, metadata `label`, `index`).

Finite (then it tells the scheduler it is done, so a `run` flowgraph ends by itself) or looping.
Message ports have no back-pressure, so a looping source must be paced (`max_rate`). `n_images`
selects the seeded class-balanced subset `rkdsc eval --n` scores (issue 20).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_core.data.datasets import load_dataset
from rkdsc_core.data.spec import DatasetSpec
from rkdsc_core.data.subsets import balanced_subset
from rkdsc_core.errors import check_choice
from rkdsc_gr._pdu import INDEX, LABEL, PORT_OUT, make_pdu, post_done

log = logging.getLogger(__name__)


SELECTIONS = ("balanced", "range")


class image_source(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Emit `n_images` images of `dataset`/`split` (0 = the whole split).

    Args:
        dataset: one of `rkdsc_core.data.datasets.list_datasets()` (e.g. "fmnist", "fmnist_subset"),
            or a bundle's `DatasetSpec` (`Bundle.dataset`): then the images are loaded at its size
            and checked against it.
        split: "test" or "train".
        n_images: how many images per pass (0 = all).
        start: index of the first image (selection "range" only).
        loop: start again after the last image (needs `max_rate` > 0).
        max_rate: images per second (0 = as fast as the consumers take them; finite only).
        root: dataset root for CIFAR / ImageFolder ("" = default locations).
        image_size: ImageFolder images are resized to this (0 = the dataset's default).
        selection: "balanced" = the seeded class-balanced subset of `n_images` that every
            `--n` uses (in index order); "range" = the images `start`..`start + n_images - 1`.

    Output `out`: PDUs `(dict(label=int, index=int), u8vector[H*W*C])`, pixels in H, W, C order.
    `index` numbers the images in the order sent: 0…n−1 for "balanced" (the positions `rkdsc
    eval --n` keys its channel draws by; the split's own indices when n is the whole split),
    `start`… for "range". Consecutive indices let `rkdsc_ota_tx` put several images in a frame.
    Attributes: `indices` int64 [n] (the images' indices in the split, in the order sent),
    `images` uint8 [n, H*W*C], `labels` int64 [n] (their labels, in the order sent).
    """

    def __init__(
        self,
        dataset: str | DatasetSpec = "fmnist",
        split: str = "test",
        n_images: int = 0,
        start: int = 0,
        loop: bool = False,
        max_rate: float = 0.0,
        root: str = "",
        image_size: int = 0,
        selection: str = "balanced",
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_image_source", in_sig=None, out_sig=None)
        if n_images < 0 or start < 0 or image_size < 0:
            raise ValueError(
                f"n_images ({n_images}), start ({start}), image_size ({image_size}) must be >= 0"
            )
        check_choice("selection", selection, SELECTIONS)
        if start and selection != "range":
            raise ValueError(f"start={start} needs selection='range' (balanced picks the images)")
        if max_rate < 0:
            raise ValueError(f"max_rate must be >= 0 images/s, got {max_rate}")
        if loop and max_rate <= 0:
            raise ValueError("loop=True needs max_rate > 0: message ports have no back-pressure")
        if isinstance(dataset, DatasetSpec):
            if image_size:
                raise ValueError("image_size comes from the DatasetSpec: leave it 0")
            data = dataset.load(split, root or None)
            dataset = dataset.name
        else:
            data = load_dataset(dataset, split, root or None, image_size=image_size or None)
        stop = len(data) if n_images == 0 else start + n_images
        if start >= len(data) or stop > len(data):
            raise ValueError(
                f"images {start}..{stop - 1} asked for, but {dataset}/{split} has {len(data)}"
            )
        if selection == "range":
            self.indices = np.arange(start, stop, dtype=np.int64)
        else:
            self.indices = balanced_subset(data.labels, n_images or None)
        self.images = np.ascontiguousarray(data.images[self.indices]).reshape(len(self.indices), -1)
        self.labels = data.labels[self.indices]
        self.classes = data.classes
        self.image_shape = tuple(data.images.shape[1:])
        self._first = start
        self._loop = bool(loop)
        self._period = 1.0 / max_rate if max_rate > 0 else 0.0
        self._sent = 0
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.message_port_register_out(PORT_OUT)

    def sent(self) -> int:
        """PDUs emitted so far."""
        return self._sent

    def start(self) -> bool:
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="rkdsc_image_source", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> bool:
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        return True

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            while not self._halt.is_set():
                for i in range(len(self.labels)):
                    if self._halt.is_set():
                        return
                    if self._period:
                        delay = t0 + self._sent * self._period - time.monotonic()
                        if delay > 0 and self._halt.wait(delay):
                            return
                    meta = pmt.dict_add(pmt.make_dict(), LABEL, pmt.from_long(int(self.labels[i])))
                    meta = pmt.dict_add(meta, INDEX, pmt.from_long(self._first + i))
                    self.message_port_pub(PORT_OUT, make_pdu(meta, self.images[i]))
                    self._sent += 1
                if not self._loop:
                    break
        except Exception:  # noqa: BLE001 - log, then let the graph finish
            log.exception("image_source stopped after %d images", self._sent)
        log.debug("image_source: %d images sent", self._sent)
        post_done(self)
