"""The cyclic garbage collector of a worker process: timed, and kept off what lives as long as the process.

A worker allocates many short-lived container objects per post (records, events, token tuples). With
Python's defaults the collector runs every 700 net allocations and now and then scans the whole heap,
jieba's dictionary and the model's included, holding the GIL all the while. What is loaded at start
lives as long as the process, so ``settle_heap`` freezes it out of the collector's scans and lets the
youngest generation grow larger between collections. ``yuqing_gc_seconds`` shows what is left.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from pipeline.observability import metrics

YOUNGEST_THRESHOLD = 20_000  # net allocations between collections of the youngest generation (Python: 700)


def settle_heap() -> None:
    """Call once everything long-lived is loaded, before the first batch; collections are timed from here."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, oldest)
    if not any(isinstance(callback, _CollectionTimer) for callback in gc.callbacks):
        gc.callbacks.append(_CollectionTimer())


class _CollectionTimer:
    """A ``gc.callbacks`` entry that adds each collection's duration to ``yuqing_gc_seconds``."""

    def __init__(self) -> None:
        self._started = 0.0  # collections hold the GIL: one runs at a time
        # Bound now: a collection may start inside prometheus-client's lock of the labelled metric (a scrape
        # copying its children), and that lock is not reentrant; a child's own lock is never held then.
        self._seconds = [metrics.GC_SECONDS.labels(generation=str(n)) for n in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._seconds[info["generation"]].inc(time.perf_counter() - self._started)
