"""Worker memory over a long run: its resident set after every chunk of posts, and whether it levels off.

One worker on fresh embedded services takes ``posts`` posts in chunks; after each chunk is counted in
Redis, the worker's own ``process_resident_memory_bytes`` (its /metrics, as Prometheus would read it)
is sampled. ``paced_s`` spreads the chunks over that many seconds (a soak at a steady rate) instead of
sending each as soon as the one before is counted. The reference is the worker's resident set after
the first chunk, once the model, the text stages and the sinks are warm. The posts' event times span
the last hour, so every live window and the noise state's time limits are exercised. History goes to chDB
in the worker's process, as in the demo, or with ``clickhouse_server`` to the configured server, as in
production, so that chDB's caches do not count as the worker's.
"""

from __future__ import annotations

import math
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline.devkit.bench.environment import bench_environment
from pipeline.devkit.demo import free_port, start_worker, stop_worker
from pipeline.devkit.progress import progress_bar
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.kafka import make_producer
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive

SPAN_S = 3_300.0  # the posts' event times: the last 55 minutes


def minutes_since(start: datetime) -> int:
    """The count's window: every minute from the first post's event time to now, and no more (each minute
    is a Redis hash the bench reads at every poll, beside the worker it measures)."""
    return math.ceil((datetime.now(UTC) - start).total_seconds() / 60) + 1


def resident_mb(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "process_resident_memory_bytes":
            return round(family.samples[0].value / 2**20, 1)
    raise RuntimeError("the worker's /metrics has no process_resident_memory_bytes (not Linux?)")


def run(
    base: Settings,
    posts: int = 100_000,
    chunks: int = 20,
    paced_s: float | None = None,
    timeout_s: float = 7_200,
    *,
    clickhouse_server: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(seconds=SPAN_S + 300)
    feed = SyntheticFeed("bot-flood", rate=posts / SPAN_S, seed=23, run_id=uuid.uuid4().hex[:8], start=start)
    chunk = -(-posts // chunks)
    curve: list[dict[str, float]] = []
    with bench_environment(base, "memory", clickhouse_server=clickhouse_server, worker_http_port=free_port(0)) as (
        settings,
        workdir,
    ):
        worker = start_worker(settings, workdir / "bench-worker.log")
        producer, live = make_producer(settings), RedisLive(settings)
        started = time.perf_counter()
        try:
            with progress_bar("memory", posts, enabled=progress) as report:
                sent = 0
                while sent < posts:
                    due = started + (paced_s or 0) * sent / posts
                    time.sleep(max(0.0, due - time.perf_counter()))
                    batch = feed.take(min(chunk, posts - sent))
                    for post in batch:
                        producer.send(settings.topic_raw, value=post.model_dump_json().encode())
                    producer.flush()
                    sent += len(batch)
                    while (counted := live.total(minutes_since(start))) < sent:
                        if worker.poll() is not None or time.perf_counter() - started > timeout_s:
                            raise RuntimeError(f"worker stopped or timed out at {counted}/{sent}; see {workdir}")
                        time.sleep(0.1)
                    report(counted)
                    elapsed = time.perf_counter() - started
                    rss_mb = resident_mb(settings.worker_http_port)
                    curve.append({"posts": sent, "seconds": round(elapsed, 1), "rss_mb": rss_mb})
            counted = live.total(minutes_since(start))
        finally:
            producer.close()
            stop_worker(worker)
    rss = [point["rss_mb"] for point in curve]
    last_half = [point["rss_mb"] for point in curve if point["posts"] > posts / 2]
    return {
        "bench": "memory",
        "model_path": str(base.model_path),
        "posts": posts,
        "counted": counted,
        "seconds": curve[-1]["seconds"],
        "paced_s": paced_s,
        "clickhouse": "server" if clickhouse_server else "chdb in the worker",
        "reference_rss_mb": rss[0],
        "final_rss_mb": rss[-1],
        "peak_rss_mb": max(rss),
        "last_half_spread": round((max(last_half) - min(last_half)) / min(last_half), 3) if last_half else None,
        "curve": curve,
    }
