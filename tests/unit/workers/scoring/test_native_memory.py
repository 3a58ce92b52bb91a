"""The model's native memory bounds: kernel caches capped unless the operator chose, the heap trimmed."""

from __future__ import annotations

import os
import sys

import pytest

from workers.scoring.native_memory import (
    KERNEL_CACHE_ENTRIES,
    KERNEL_CACHE_VARIABLES,
    bound_kernel_caches,
    heap_trimmer,
)


def test_kernel_caches_are_capped_unless_the_operator_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = KERNEL_CACHE_VARIABLES
    monkeypatch.delenv(first, raising=False)
    monkeypatch.setenv(second, "512")
    bound_kernel_caches()
    assert os.environ[first] == str(KERNEL_CACHE_ENTRIES)
    assert os.environ[second] == "512"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_the_heap_trimmer_runs_on_glibc() -> None:
    trim = heap_trimmer()
    assert trim is not None
    trim()
