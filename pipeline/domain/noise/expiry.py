"""Event-time expiry for the noise state: which keys were last active before a cutoff.

Every piece of noise state (an index entry, a cluster, an author) has a time. It is evicted once
that time falls out of its window behind the watermark, all of it and not only what happens to be
least recently used (events arrive out of order), and when a cap is reached the oldest goes first,
ties broken by key. The Redis filter keeps the same times in sorted sets (ties broken by member),
so both forget the same things at the same moment.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

K = TypeVar("K", int, str)


class Expiry(Generic[K]):
    """Each key's time, and the keys whose time is older than a cutoff; not thread-safe.

    A min-heap of (time, key) with lazy deletion: a changed time pushes a new item and the old one
    is skipped when it surfaces, so every operation is O(log n) amortised; the heap is rebuilt
    when skipped items outnumber live ones, so its size stays within twice the keys'.
    """

    def __init__(self) -> None:
        self._time: dict[K, float] = {}
        self._heap: list[tuple[float, K]] = []

    def __len__(self) -> int:
        return len(self._time)

    def set(self, key: K, t: float) -> None:
        if self._time.get(key) != t:
            self._time[key] = t
            heapq.heappush(self._heap, (t, key))
            if len(self._heap) > 2 * len(self._time) + 64:
                self._heap = [(when, k) for k, when in self._time.items()]
                heapq.heapify(self._heap)

    def expired(self, cutoff: float) -> list[K]:
        """Forget and return every key whose time is before ``cutoff``."""
        gone: list[K] = []
        while self._heap and self._heap[0][0] < cutoff:
            t, key = heapq.heappop(self._heap)
            if self._time.get(key) == t:
                del self._time[key]
                gone.append(key)
        return gone

    def pop_oldest(self) -> K:
        """Forget and return the key with the oldest time (the smallest key among equals)."""
        while True:
            t, key = heapq.heappop(self._heap)  # IndexError when empty, like list.pop
            if self._time.get(key) == t:
                del self._time[key]
                return key
