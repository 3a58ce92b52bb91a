"""Scale-out: the same posts through 1 and through more worker processes in one consumer group.

Each count of workers gets fresh embedded services and the same records: a bot-flood stream, so that
near-duplicates spread over every partition. The workers join first (each answers /readyz); then the
records are produced in one burst and the clock runs until Redis counts the last one. The counts that
must not depend on the number of workers are read back from posts.scored (every post's verdict) and
from Redis (the live totals the dashboard and the detectors read). The reference is the run with one
worker, measured in the same run; the TF-IDF model keeps the model from being the bottleneck.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.devkit.bench.announcements import FlushAnnouncements
from pipeline.devkit.bench.environment import bench_environment
from pipeline.devkit.demo import free_port, start_worker, stop_worker
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.kafka import make_producer, read_topic
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive

# The posts' event times span the ten minutes before the first run, and each run stops within 15 minutes:
# an hour holds them all. Polled 20 times a second beside the workers, a day's window (1,440 hashes a
# poll) would take CPU from them.
WINDOW_MINUTES = 60
JOIN_TIMEOUT_S = 180.0
# What each run reports. Raw counts and sentiments cannot depend on the number of workers. Duplicate and
# bot verdicts are final when given, on the posts seen so far, and workers draining a backlog reach them
# in another order than one worker does: near-duplicate chains (A like B, B like C, A unlike C) can then
# count once more or less, and a flood's copies cross the author threshold at another copy.
COUNTS = ("redis_raw", "redis_deduplicated", "scored", "not_duplicate", "negative", "suspected_bot")


def scale_records(n: int, seed: int = 17) -> list[bytes]:
    """n posts of a bot-flood stream over the last nine minutes, so every one is in a live window."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    feed = SyntheticFeed("bot-flood", rate=n / 540, seed=seed, run_id=uuid.uuid4().hex[:8], start=start)
    return [post.model_dump_json().encode() for post in feed.take(n)]


def _joined(port: int) -> bool:
    """Whether the worker got its partitions (whatever its other checks say: 503 has the same body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as refused:
        body = refused.read()
    except OSError:  # not listening yet
        return False
    return bool(json.loads(body or b"{}").get("checks", {}).get("group") == "ok")


def _log_tails(workdir: Path, lines: int = 15) -> str:
    """The end of each worker's log: the bench's folder is removed when it fails."""
    return "\n".join(
        f"{log.name}:\n" + "\n".join(log.read_text().splitlines()[-lines:])
        for log in sorted(workdir.glob("worker-*.log"))
    )


def verdict_counts(settings: Settings) -> dict[str, int]:
    """What the score agents decided, post by post, read back from posts.scored (a post delivered twice
    after a rebalance counts once)."""
    verdicts = {}
    for key, value in read_topic(settings, settings.topic_scored):
        scored = json.loads(value or b"{}")
        verdicts[key] = (scored["duplicate"], scored["suspected_bot"], scored["sentiment"])
    return {
        "scored": len(verdicts),
        "not_duplicate": sum(not duplicate for duplicate, _, _ in verdicts.values()),
        "suspected_bot": sum(bot for _, bot, _ in verdicts.values()),
        "negative": sum(sentiment == "negative" for _, _, sentiment in verdicts.values()),
    }


def run_workers(base: Settings, records: list[bytes], workers: int, timeout_s: float = 900) -> dict[str, Any]:
    """``records`` through ``workers`` worker processes on fresh services: posts/s and the counts."""
    with bench_environment(base, f"scale{workers}", partitions=max(4, workers)) as (settings, workdir):
        processes = []
        try:
            for index in range(workers):
                port = free_port(0)
                # chDB is in-process and locks its folder: one each (the counts are read from Redis and Kafka).
                chdb = type(settings.clickhouse_url)(f"chdb://{workdir / f'chdb-{index}'}")
                each = settings.model_copy(update={"worker_http_port": port, "clickhouse_url": chdb})
                processes.append((start_worker(each, workdir / f"worker-{index}.log"), port))
            deadline = time.perf_counter() + JOIN_TIMEOUT_S
            while not all(_joined(port) for _, port in processes):
                if time.perf_counter() > deadline or any(p.poll() is not None for p, _ in processes):
                    raise RuntimeError(f"workers did not all join: {_log_tails(workdir)}")
                time.sleep(0.2)
            producer = make_producer(settings)
            started = time.perf_counter()
            for record in records:
                producer.send(settings.topic_raw, value=record)
            producer.flush()
            producer.close()
            live = RedisLive(settings)
            with FlushAnnouncements(settings) as flushes:
                while live.total(WINDOW_MINUTES) < len(records):
                    if time.perf_counter() - started > timeout_s or any(p.poll() is not None for p, _ in processes):
                        counted = live.total(WINDOW_MINUTES)
                        raise RuntimeError(f"stopped at {counted}/{len(records)}: {_log_tails(workdir)}")
                    flushes.wait()
            seconds = time.perf_counter() - started
            counts = {
                "redis_raw": live.total(WINDOW_MINUTES),
                "redis_deduplicated": live.total(WINDOW_MINUTES, deduplicated=True),
                **verdict_counts(settings),
            }
        finally:
            for process, _ in processes:
                stop_worker(process)
    return {"workers": workers, "posts_per_s": round(len(records) / seconds, 1), "seconds": round(seconds, 2), **counts}


def run(posts: int, base: Settings, workers: Sequence[int] = (1, 2)) -> dict[str, Any]:
    records = scale_records(posts)
    runs = [run_workers(base, records, count) for count in workers]
    reference = runs[0]
    return {
        "bench": "scale",
        "posts": posts,
        "model_path": str(base.model_path),
        "noise_state": base.noise_state,
        "text_processes": base.text_processes,
        "runs": runs,
        "throughput_ratio": {str(r["workers"]): round(r["posts_per_s"] / reference["posts_per_s"], 3) for r in runs},
        "identical": {key: all(r[key] == reference[key] for r in runs) for key in COUNTS},
    }
