"""A worker freezes what it loaded at start out of the collector's scans, and times every collection after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from workers.heap import YOUNGEST_THRESHOLD, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks


def _collected_seconds(generation: int) -> float:
    return REGISTRY.get_sample_value("yuqing_gc_seconds_total", {"generation": str(generation)}) or 0.0


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_the_loaded_heap_and_times_each_collection() -> None:
    loaded = [{"kept": n} for n in range(1000)]  # long-lived: what a worker loads before its first batch
    settle_heap()
    settle_heap()  # again: still one timer
    assert gc.get_freeze_count() >= len(loaded)
    assert gc.get_threshold()[0] == YOUNGEST_THRESHOLD
    before = _collected_seconds(2)
    gc.collect()
    assert _collected_seconds(2) > before
    assert sum(type(callback).__name__ == "_CollectionTimer" for callback in gc.callbacks) == 1
