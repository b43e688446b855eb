"""`rkdsc_image_source`: a dataset split as image PDUs (u8vector H·W·C, metadata `label`, `index`).

Finite (then it tells the scheduler it is done, so a `run` flowgraph ends by itself) or looping.
Message ports have no back-pressure, so a looping source must be paced (`max_rate`).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from rkdsc_core.data.datasets import load_dataset
from rkdsc_gr._pdu import INDEX, LABEL, PORT_OUT, make_pdu, post_done

log = logging.getLogger(__name__)


class image_source(gr.basic_block):  # noqa: N801 - GNU Radio block naming
    """Emit images of `dataset`/`split` from `start`, `n_images` of them (0 = to the end).

    Args:
        dataset: one of `rkdsc_core.data.datasets.list_datasets()` (e.g. "fmnist", "fmnist_subset").
        split: "test" or "train".
        n_images: how many images per pass (0 = all from `start`).
        start: index of the first image.
        loop: start again after the last image (needs `max_rate` > 0).
        max_rate: images per second (0 = as fast as the consumers take them; finite only).
        root: dataset root for CIFAR / ImageFolder ("" = default locations).

    Output `out`: PDUs `(dict(label=int, index=int), u8vector[H*W*C])`, pixels in H, W, C order.
    """

    def __init__(
        self,
        dataset: str = "fmnist",
        split: str = "test",
        n_images: int = 0,
        start: int = 0,
        loop: bool = False,
        max_rate: float = 0.0,
        root: str = "",
    ) -> None:
        gr.basic_block.__init__(self, name="rkdsc_image_source", in_sig=None, out_sig=None)
        if n_images < 0 or start < 0:
            raise ValueError(f"n_images ({n_images}) and start ({start}) must be >= 0")
        if max_rate < 0:
            raise ValueError(f"max_rate must be >= 0 images/s, got {max_rate}")
        if loop and max_rate <= 0:
            raise ValueError("loop=True needs max_rate > 0: message ports have no back-pressure")
        data = load_dataset(dataset, split, root or None)
        stop = len(data) if n_images == 0 else start + n_images
        if start >= len(data) or stop > len(data):
            raise ValueError(
                f"images {start}..{stop - 1} asked for, but {dataset}/{split} has {len(data)}"
            )
        self.images = np.ascontiguousarray(data.images[start:stop]).reshape(stop - start, -1)
        self.labels = data.labels[start:stop]
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
