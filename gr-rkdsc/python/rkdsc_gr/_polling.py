"""Waiting on a running flowgraph from Python: poll a condition with a deadline (message graphs
do not finish by themselves; a sleep is never an assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], bool], timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll `cond` every `poll_s` s until it holds (True) or `timeout_s` s have passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True
