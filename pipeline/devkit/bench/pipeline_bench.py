"""Ingest and end-to-end throughput on the embedded services.

References, measured in the same run on the same broker:
- ingest: a bare kafka-python producer sending the same bytes without validation;
- end to end: a bare kafka-python consumer reading the same topic without doing anything.
The ratios say what validation and the whole pipeline cost on top of the Kafka client itself.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer

from pipeline.devkit.bench.environment import bench_environment
from pipeline.devkit.demo import start_worker, stop_worker
from pipeline.devkit.progress import progress_bar
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import make_producer
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def _records(n: int) -> list[bytes]:
    """n posts whose event times spread over the last ten minutes, so every one is in a live window."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    feed = SyntheticFeed("baseline", rate=n / 540, seed=11, run_id=uuid.uuid4().hex[:8], start=start)
    posts = feed.take(n)
    return [post.model_dump_json().encode() for post in posts]


def bench_ingest(settings: Settings, records: list[bytes]) -> dict[str, Any]:
    producer = make_producer(settings)
    started = time.perf_counter()
    for record in records:
        producer.send(f"{settings.topic_raw}.reference", value=record)
    producer.flush()
    reference = time.perf_counter() - started
    producer.close()

    ingestor = Ingestor(settings)
    started = time.perf_counter()
    for record in records:
        ingestor.submit(record)
    ingestor.flush()
    ours = time.perf_counter() - started
    ingestor.close()
    return {
        "posts": len(records),
        "posts_per_s": _rate(len(records), ours),
        "reference_posts_per_s": _rate(len(records), reference),
        "ratio": round(reference / ours, 3),
    }


def _bare_consume_seconds(settings: Settings, n: int) -> float:
    consumer = KafkaConsumer(
        settings.topic_raw,
        bootstrap_servers=settings.broker,
        group_id=f"bench-ref-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    seen, started = 0, None
    while seen < n:
        batch = consumer.poll(timeout_ms=1000)
        if batch and started is None:
            started = time.perf_counter()
        seen += sum(len(records) for records in batch.values())
    consumer.close()
    return time.perf_counter() - (started or time.perf_counter())


def bench_end_to_end(
    settings: Settings, n: int, log_dir: Path, timeout_s: float = 600, *, progress: bool = False
) -> dict[str, Any]:
    """Posts are already on posts.raw; time one worker from its first counted post to the last."""
    reference = _bare_consume_seconds(settings, n)
    live = RedisLive(settings)
    launched = time.perf_counter()
    worker = start_worker(settings, log_dir / "bench-worker.log")
    first: float | None = None
    try:
        with progress_bar("end to end", n, enabled=progress) as report:
            while (counted := live.total(24 * 60)) < n:
                report(counted)
                if first is None and counted:
                    first = time.perf_counter()
                if worker.poll() is not None or time.perf_counter() - launched > timeout_s:
                    raise RuntimeError(f"worker stopped or timed out at {counted}/{n}; see {log_dir}")
                time.sleep(0.05)
            report(counted)
    finally:
        stop_worker(worker)
    done = time.perf_counter()
    first = first or done
    return {
        "posts": n,
        "startup_s": round(first - launched, 2),
        "posts_per_s": _rate(n, done - first),
        "reference_consume_posts_per_s": _rate(n, reference),
        "ratio": round(reference / (done - first), 3) if done > first else None,
    }


def run(posts: int, base: Settings, *, progress: bool = False) -> dict[str, Any]:
    """``progress``: a bar on stderr while the worker drains (a terminal only)."""
    with bench_environment(base, "pipeline") as (settings, workdir):
        ingest = bench_ingest(settings, _records(posts))
        end_to_end = bench_end_to_end(settings, posts, workdir, progress=progress)
    return {"bench": "pipeline", "ingest": ingest, "end_to_end": end_to_end, "model_path": str(base.model_path)}
