"""Ingest and end-to-end throughput on the embedded services, where the worker's time goes, and latency.

References, measured in the same run on the same broker:
- ingest: a bare kafka-python producer sending the same bytes without validation;
- end to end: a bare kafka-python consumer reading the same topic without doing anything, and the served
  model alone on the same posts, through the worker's runtime, before the workers start and after they
  stop (``e2e_over_model`` is over the mean of the two).
The ratios say what validation and the whole pipeline cost on top of the Kafka client and the model.

The stage table comes from the worker's own stage counters (``yuqing_stage_seconds``), read from its
/metrics once the backlog is stored; the latency part then offers the same worker 50% and 80% of the
end-to-end rate just measured (``pipeline.devkit.bench.latency``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.devkit.bench import latency
from pipeline.devkit.bench.announcements import FlushAnnouncements
from pipeline.devkit.bench.cpu import CpuMeter
from pipeline.devkit.bench.environment import bench_environment
from pipeline.devkit.demo import free_port, start_worker, stop_worker
from pipeline.devkit.progress import progress_bar
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain.text.clean import clean
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import make_producer
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive, connect
from schemas.records import Post
from workers.runtime import ScoringRuntime
from workers.scoring.loading import load_scorer
from workers.scoring.options import RuntimeOptions

MODEL_POSTS = 4096  # at most this many posts for the model alone: enough for a steady rate, quick on a CPU
LOADS = (0.5, 0.8)  # offered loads of the latency part, as shares of the end-to-end rate
LATENCY_S = 10.0
STAGE_SECONDS, STAGE_RECORDS = "yuqing_stage_seconds", "yuqing_stage_records"
GC_SECONDS = "yuqing_gc_seconds"
STAGE_ORDER = (
    *("decode", "clean", "segment", "signature", "stack", "noise", "model", "subjects", "serialise", "deliver"),
    *("redis_flush", "clickhouse_flush"),  # the worker's sinks, in the order it stores to them
)
STAGE_DEFINITION = (
    "the worker's own stage counters over the end-to-end run: each stage's seconds over the records it "
    "handled; the score agent's text stages run in its text thread (clean and segment in its text processes "
    "when there are any, summed over them), the model in its model thread, and a sink's figure is its add "
    "and flush, retries included; 'other' is the rest of a batch's time from take to delivery (in the score "
    "agent mostly waiting for the batch ahead, as batches are in flight together); agents, threads and "
    "batches overlap, so the sum need not match the end-to-end µs per post; 'gc' is the time the worker "
    "processes' garbage collector ran (holding the GIL), per post scored"
)


# The posts' event times span the ten minutes before the run, and a run stops ten minutes after launch:
# 30 minutes hold them all (a day's window, 1,440 hashes a read, took a quarter of a core from the worker).
COUNT_WINDOW_MINUTES = 30


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


def bench_model_alone(settings: Settings, records: list[bytes], limit: int = MODEL_POSTS) -> dict[str, Any]:
    """The served model on the posts' model texts, through the runtime the worker uses (its micro-batches,
    call planning and thread; embeddings where the model gives them), before the worker starts."""
    posts = [Post.model_validate_json(record) for record in records[:limit]]
    texts = [clean(post.text).content or post.text for post in posts]  # as PreparedPost.model_text
    scorer = load_scorer(settings.model_path, options=RuntimeOptions.from_settings(settings))
    runtime = ScoringRuntime(scorer, settings.batch_max_items, settings.batch_max_tokens, settings.scorer_threads)
    size = settings.batch_max_items
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]

    async def score_all() -> float:
        await runtime.predict(texts[:8])  # the first call pays for allocations
        started = time.perf_counter()
        for batch in batches:
            await runtime.predict(batch)
        return time.perf_counter() - started

    try:
        seconds = asyncio.run(score_all())
    finally:
        runtime.close()
    return {"posts": len(texts), "posts_per_s": _rate(len(texts), seconds), "batch_max_items": size}


def _mean_rate(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The model alone measured before the workers start and after they stop: a shared machine's speed
    drifts within a run, and the mean of both ends is a steadier reference for ``e2e_over_model``."""
    runs = [before["posts_per_s"], after["posts_per_s"]]
    return {**before, "posts_per_s": round(sum(runs) / 2, 1), "before_and_after_posts_per_s": runs}


def bench_end_to_end(
    settings: Settings,
    n: int,
    worker: subprocess.Popen[bytes],
    launched: float,
    log_dir: Path,
    timeout_s: float = 600,
    *,
    progress: bool = False,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """Posts are already on posts.raw; time the worker from its first flush to the one that counts the last
    post. The posts of the first flush were scored before the clock started, so they are not in the rate.
    ``meter`` reads the processes' CPU over the same window."""
    live = RedisLive(settings)
    first: float | None = None
    counted_at_first = 0
    # The count is read after each flush: a poll 20 times a second took CPU from the worker it times.
    with progress_bar("end to end", n, enabled=progress) as report, FlushAnnouncements(settings) as flushes:
        while (counted := live.total(COUNT_WINDOW_MINUTES)) < n:
            report(counted)
            if first is None and counted:
                first, counted_at_first = time.perf_counter(), counted
                if meter is not None:
                    meter.start()
            if worker.poll() is not None or time.perf_counter() - launched > timeout_s:
                raise RuntimeError(f"worker stopped or timed out at {counted}/{n}; see {log_dir}")
            flushes.wait()
        report(counted)
    done = time.perf_counter()
    if meter is not None:
        meter.stop()
    first = first or done
    timed = n - counted_at_first
    return {
        "posts": n,
        "startup_s": round(first - launched, 2),
        "timed_posts": timed,
        "posts_per_s": _rate(timed, done - first) if timed else None,
    }


def _scrape(url: str) -> dict[tuple[str, str, str], float]:
    """The worker's stage counters, (sample name, agent, stage) → value, and its garbage collector's time,
    (sample name, "gc", generation) → seconds."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    counters: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == GC_SECONDS:
                counters[sample.name, "gc", sample.labels["generation"]] = sample.value
            elif family.name in (STAGE_SECONDS, STAGE_RECORDS):
                counters[sample.name, sample.labels["agent"], sample.labels["stage"]] = sample.value
    return counters


def scrape_when_stored(url: str, n: int, timeout_s: float = 60) -> dict[tuple[str, str, str], float]:
    """The counters once every sink stored ``n`` posts: Redis flushes before ClickHouse, so the count that
    ended the end-to-end run can come before the last ClickHouse flush is accounted."""
    deadline = time.perf_counter() + timeout_s
    while True:
        counters = _scrape(url)
        stored = [v for (name, agent, stage), v in counters.items() if name == f"{STAGE_RECORDS}_total"
                  and agent == "aggregate" and stage.endswith("_flush")]  # fmt: skip
        if (stored and min(stored) >= n) or time.perf_counter() > deadline:
            return counters
        time.sleep(0.1)


def stage_costs(counters: Mapping[tuple[str, str, str], float], e2e_posts_per_s: float | None) -> dict[str, Any]:
    """µs per record of each stage, each agent's unaccounted rest as ``other``, and the end-to-end µs/post."""
    seconds = {(agent, stage): v for (name, agent, stage), v in counters.items() if name == f"{STAGE_SECONDS}_total"}
    records = {(agent, stage): v for (name, agent, stage), v in counters.items() if name == f"{STAGE_RECORDS}_total"}
    table: dict[str, Any] = {"unit": "µs per post", "definition": STAGE_DEFINITION}
    for agent in ("score", "aggregate"):
        stages = sorted(stage for a, stage in seconds if a == agent and stage != "batch")
        stages.sort(key=lambda stage: STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER))
        batch_s, batch_n = seconds.get((agent, "batch"), 0.0), records.get((agent, "batch"), 0.0)
        per_post = {stage: _us(seconds[agent, stage], records[agent, stage]) for stage in stages}
        rest = batch_s - sum(seconds[agent, stage] for stage in stages)
        table[agent] = {**per_post, "other": _us(rest, batch_n), "batch": _us(batch_s, batch_n)}
    gc_s = sum(v for (name, *_), v in counters.items() if name == f"{GC_SECONDS}_total")
    table["gc"] = _us(gc_s, records.get(("score", "batch"), 0.0))  # every worker process's, per post scored
    table["sum_of_batches"] = round(table["score"]["batch"] + table["aggregate"]["batch"], 1)
    table["e2e_us_per_post"] = round(1e6 / e2e_posts_per_s, 1) if e2e_posts_per_s else None
    return table


def _worker_settings(settings: Settings, split: bool) -> list[Settings]:
    """One worker with both agents, or a scoring one (on ``settings``' port) and a storing one."""
    if not split:
        return [settings]
    return [
        settings.model_copy(update={"worker_agents": "score"}),
        settings.model_copy(update={"worker_agents": "aggregate", "worker_http_port": free_port(0)}),
    ]


def _us(seconds: float, records: float) -> float:
    return round(seconds / records * 1e6, 1) if records else 0.0


def bench_latency(
    settings: Settings, worker: subprocess.Popen[bytes], capacity: float, duration_s: float
) -> dict[str, Any]:
    return {
        "definition": latency.DEFINITION,
        "capacity_posts_per_s": capacity,
        "capacity_source": "end_to_end.posts_per_s (a backlog drained in full micro-batches)",
        "arrivals": "evenly spaced",
        "duration_s": duration_s,
        "loads": [{"load": load, **latency.measure(settings, worker, load * capacity, duration_s)} for load in LOADS],
    }


def service_pids(settings: Settings) -> dict[str, int]:
    """The broker this process started, and Redis when it runs on this machine."""
    pids: dict[str, int] = {}
    port = int(settings.broker.rsplit(":", 1)[1])
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp")):
                pids["broker"] = child.pid
    if urlsplit(settings.redis_url.get_secret_value()).hostname in ("127.0.0.1", "localhost", "::1"):
        pids["redis"] = int(connect(settings).info("server")["process_id"])
    return pids


def run(
    posts: int,
    base: Settings,
    *,
    progress: bool = False,
    latency_s: float = LATENCY_S,
    split_agents: bool = False,
    clickhouse_server: bool = False,
) -> dict[str, Any]:
    """``progress``: a bar on stderr while the worker drains (a terminal only). ``latency_s``: how long
    each offered load of the latency part lasts. ``split_agents``: a scoring and a storing process.
    ``clickhouse_server``: history goes to the base settings' ClickHouse server, as in production, not
    to chDB in the worker's process."""
    environment = bench_environment(
        base, "pipeline", clickhouse_server=clickhouse_server, worker_http_port=free_port(0)
    )
    with environment as (settings, workdir):
        records = _records(posts)
        ingest = bench_ingest(settings, records)
        model_before = bench_model_alone(settings, records)
        reference = _bare_consume_seconds(settings, posts)
        processes = _worker_settings(settings, split_agents)
        launched = time.perf_counter()
        workers = [start_worker(each, workdir / f"bench-worker-{each.worker_agents}.log") for each in processes]
        scoring = workers[0]  # what the runs watch for a crash
        names = {f"worker_{each.worker_agents}": worker.pid for each, worker in zip(processes, workers, strict=True)}
        meter = CpuMeter({**names, **service_pids(settings), "bench": os.getpid()})
        try:
            end_to_end = bench_end_to_end(settings, posts, scoring, launched, workdir, progress=progress, meter=meter)
            counters: Counter[tuple[str, str, str]] = Counter()
            for each in processes:  # summed: an agent's counters are in its own process, zero in the other
                url = f"http://127.0.0.1:{each.worker_http_port}/metrics"
                counters.update(_scrape(url) if each.worker_agents == "score" else scrape_when_stored(url, posts))
            stages = stage_costs(counters, end_to_end["posts_per_s"])
            capacity = end_to_end["posts_per_s"] or model_before["posts_per_s"]
            latencies = bench_latency(settings, scoring, capacity, latency_s)
        finally:
            for worker in workers:
                stop_worker(worker)
        model = _mean_rate(model_before, bench_model_alone(settings, records))
    ours = end_to_end["posts_per_s"]
    end_to_end |= {
        "reference_consume_posts_per_s": _rate(posts, reference),
        "ratio": round(ours * reference / posts, 3) if ours else None,
        "model_alone_posts_per_s": model["posts_per_s"],
        "e2e_over_model": round(ours / model["posts_per_s"], 3) if ours else None,
    }
    return {
        "bench": "pipeline",
        "worker_agents": "split" if split_agents else "all",
        "ingest": ingest,
        "end_to_end": end_to_end,
        "model_alone": model,
        "stages": stages,
        "cpu": meter.report(end_to_end["timed_posts"]),
        "latency": latencies,
        "model_path": str(base.model_path),
        "clickhouse": "server" if clickhouse_server else "chdb, in the worker's process",
    }
