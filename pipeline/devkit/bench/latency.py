"""Event→Redis latency of a running worker at a fixed offered load, measured per post.

Posts are produced evenly spaced at a set rate, each stamped with the current time as its event time.
A post's latency runs from the bench handing it to the Ingestor to the bench finding its "seen" marker
in Redis: the flush script sets that marker in the same atomic step as the post's counts, so the marker
existing is exactly the post being counted on the dashboard. Pending posts are looked up after every
flush announcement (``FlushAnnouncements``); it costs Redis one pipelined EXISTS per pending post per
flush, not a busy poll that would take CPU from the worker.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from typing import Any

import numpy as np

from pipeline.devkit.bench.announcements import FlushAnnouncements
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.ingest.producer import Ingestor
from pipeline.settings import Settings
from pipeline.stores.redis.keys import RedisKeys
from pipeline.stores.redis.live import connect

DEFINITION = (
    "per post: from the bench's Ingestor.submit (event time stamped then) to the bench first finding the "
    "post's seen marker in Redis, which the flush script sets atomically with its counts; pending posts "
    "are looked up after each flush announcement on the live channel"
)


class _Visibility(threading.Thread):
    """Finds when each submitted post becomes counted in Redis."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="yuqing-bench-latency", daemon=True)
        self._client = connect(settings)
        self._keys = RedisKeys(settings.redis_prefix)
        self._flushes = FlushAnnouncements(settings)
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # post id → perf_counter when submitted
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def submitted(self, post_id: str, at: float) -> None:
        with self._lock:
            self._pending[post_id] = at

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self._flushes.wait()
                self._look_up()
        finally:
            self._flushes.close()
            self._client.close()

    def _look_up(self) -> None:
        with self._lock:
            ids = list(self._pending)
        if not ids:
            return
        pipe = self._client.pipeline(transaction=False)
        for post_id in ids:
            pipe.exists(self._keys.seen(post_id))
        found = pipe.execute()
        seen_at = time.perf_counter()
        with self._lock:
            for post_id, present in zip(ids, found, strict=True):
                if present:
                    self.latencies.append(seen_at - self._pending.pop(post_id))


def percentile_ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 1) if seconds else None


def measure(
    settings: Settings, worker: subprocess.Popen[bytes], rate: float, duration_s: float, drain_s: float = 60.0
) -> dict[str, Any]:
    """Offer ``rate`` posts/s for ``duration_s`` to the running ``worker``; wait up to ``drain_s`` more for
    the last ones to be counted. Posts still unseen then are reported as such, not guessed."""
    watcher = _Visibility(settings)
    watcher.start()
    ingestor = Ingestor(settings)
    feed = SyntheticFeed("baseline", rate, seed=13, run_id=uuid.uuid4().hex[:8])
    offered = 0
    try:
        for post in feed.paced(duration_s):
            watcher.submitted(post.id, time.perf_counter())  # before the send: it cannot be seen earlier
            ingestor.submit(post.model_dump(mode="json"))
            offered += 1
        ingestor.flush()
        deadline = time.perf_counter() + drain_s
        while watcher.pending and time.perf_counter() < deadline and worker.poll() is None:
            time.sleep(0.05)
    finally:
        watcher.stopping.set()
        watcher.join()
        ingestor.close()
    latencies = watcher.latencies
    return {
        "offered_posts_per_s": round(rate, 1),
        "posts": offered,
        "seen": len(latencies),
        "p50_ms": percentile_ms(latencies, 50),
        "p99_ms": percentile_ms(latencies, 99),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }
