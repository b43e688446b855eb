"""A growing buffer of the recent samples of one stream, addressed by stream offset (used by
`ota_deframer` for its matched-filter and correlation streams)."""

from __future__ import annotations

import numpy as np


class StreamBuffer:
    """The recent input of one stream: `data` with stream offset `base` of data[0]. Appends into
    spare capacity and drops old samples by moving a start index, compacting only when the dead
    part is large (so a long frame does not cost a copy per call)."""

    def __init__(self, dtype=np.complex64) -> None:
        self._store = np.zeros(1 << 16, dtype=dtype)
        self._lo = 0  # store index of data[0]
        self._hi = 0  # store index past the last sample
        self.base = 0

    @property
    def data(self) -> np.ndarray:
        return self._store[self._lo : self._hi]

    @property
    def end(self) -> int:
        return self.base + self._hi - self._lo

    def append(self, x: np.ndarray) -> None:
        n = len(x)
        if self._hi + n > len(self._store):
            live = self._hi - self._lo
            if self._lo >= len(self._store) // 2 and live + n <= len(self._store):
                self._store[:live] = self._store[self._lo : self._hi]  # compact in place
            else:
                grown = np.zeros(max(live + n, 2 * len(self._store)), dtype=self._store.dtype)
                grown[:live] = self._store[self._lo : self._hi]
                self._store = grown
            self._lo, self._hi = 0, live
        self._store[self._hi : self._hi + n] = x
        self._hi += n

    def keep_from(self, offset: int) -> None:
        cut = min(max(offset - self.base, 0), self._hi - self._lo)
        self._lo += cut
        self.base += cut

    def restart(self, offset: int) -> None:
        self._lo = self._hi = 0
        self.base = offset
