"""``yuqing demo``: the whole pipeline on one machine, on the embedded default services.

The demo owns its data: a Redis key prefix and a chDB folder of its own, both emptied at start,
so the totals it prints are this run's and are counted back from the stores themselves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.devkit.embedded_services import ServiceError, redis_or_valkey, spawn_child, tansu_broker
from pipeline.devkit.progress import Advance, progress_bar, show_progress
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import distinct_keys, ensure_topics
from pipeline.settings import Settings, settings_env
from pipeline.stores.query import window_rows
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive, connect, delete_prefix
from schemas.records import Alert

DEMO_PREFIX = "yqdemo"
DEMO_DIR = Path(".yuqing/demo")
DRAIN_STALL_S = 60.0  # the drain gives up only when nothing more was counted for this long
DAY_MINUTES = 24 * 60
BACKFILL_MINUTES = 20  # more than the detectors need to be warm: 10 minutes learned, 5 held back
FLOOD_ORGANIC_SHARE = 0.1  # the bot-flood feed's own organic posts, as a share of the main rate
# The crisis: 20x the subject's usual negative posts. At 8x, the 30-second crisis of a 60-second run,
# split across two minutes, could stay under the detectors' thresholds: the demo missed its own crisis.
CRISIS_MULTIPLIER = 20.0
# The history is scored before the live feeds start, within about HISTORY_SCORING_S: where the model
# is slow, the demo's rate comes down. The whole pipeline keeps about PIPELINE_SHARE of the model's own
# rate (text stages, sinks, broker and feeds share the machine), with a margin (docs/benchmarks.md).
HISTORY_SCORING_S = 180.0
PIPELINE_SHARE = 0.7
CALIBRATION_POSTS = 256
DEMO_SUBJECTS = Path(str(resources.files("pipeline.devkit") / "demo_subjects.yaml"))


def start_worker(settings: Settings, log_path: Path, *, with_api: bool = False) -> subprocess.Popen[bytes]:
    """A worker in its own process, as in production; its settings travel in the environment."""
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "WARNING", *(["--api"] if with_api else [])]
    with log_path.open("ab") as log:
        return spawn_child(command, env=env, log=log)


def stop_worker(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Feed(threading.Thread):
    """Runs one synthetic feed in real time, through its own producer, until stopped or done."""

    def __init__(self, settings: Settings, feed: SyntheticFeed, duration: float | None) -> None:
        super().__init__(name="yuqing-demo-feed", daemon=True)
        self.ingestor = Ingestor(settings)
        self._feed = feed
        self._duration = duration
        self.stopping = threading.Event()

    def run(self) -> None:
        for post in self._feed.paced(self._duration):
            if self.stopping.is_set():
                break
            self.ingestor.submit(post.model_dump(mode="json"))
        self.ingestor.flush()


def scoring_rate(settings: Settings, seed: int) -> float:
    """Posts/s the served model scores on this machine, through the runtime the worker uses (its call
    sizes, embeddings included), timed before the worker starts so that nothing else competes."""
    from workers.runtime import ScoringRuntime
    from workers.scoring.loading import load_scorer
    from workers.scoring.options import RuntimeOptions

    scorer = load_scorer(settings.model_path, options=RuntimeOptions.from_settings(settings))
    runtime = ScoringRuntime(scorer, settings.batch_max_items, settings.batch_max_tokens)
    texts = [post.text for post in SyntheticFeed("baseline", 10.0, seed=seed).take(CALIBRATION_POSTS)]
    try:
        asyncio.run(runtime.predict(texts[:8]))  # the first call pays for allocations
        started = time.perf_counter()
        asyncio.run(runtime.predict(texts))
        return len(texts) / max(time.perf_counter() - started, 1e-6)
    finally:
        runtime.close()


def affordable_rate(requested: float, model_posts_per_s: float) -> float:
    """The demo's rate, at most ``requested``, at which its history is scored within ``HISTORY_SCORING_S``
    on this machine (a slow CPU model gets a slower demo, not one that never catches up)."""
    history_posts_per_rate = BACKFILL_MINUTES * 60 * (1 + FLOOD_ORGANIC_SHARE)
    affordable = PIPELINE_SHARE * model_posts_per_s * HISTORY_SCORING_S / history_posts_per_rate
    return round(min(requested, affordable), 2)


def backfill(settings: Settings, rate: float, seed: int, minutes: int) -> int:
    """The last ``minutes`` of organic traffic, sent before the live feeds: a deployment that has been
    running has a history, and the detectors need one (their baselines) before they may alert."""
    start = datetime.now(UTC) - timedelta(minutes=minutes)
    history = SyntheticFeed("baseline", rate, seed=seed, start=start).take(int(rate * 60 * minutes))
    ingestor = Ingestor(settings)
    for post in history:
        ingestor.submit(post.model_dump(mode="json"))
    accepted = ingestor.flush().accepted
    ingestor.close()
    return accepted


class DemoFeeds:
    """The demo's traffic: an organic feed with a crisis in the middle of the run, and a bot flood.

    The flood (negative copies about 云帆手机 from fresh accounts) is the decoy: it inflates the raw
    counts, while the deduplicated ones, which alerts read, count it once.
    """

    def __init__(self, settings: Settings, rate: float, duration: float | None, seed: int) -> None:
        span = duration or 180.0
        crisis = SyntheticFeed(
            "crisis", rate, seed=seed, start_s=0.3 * span, duration_s=0.5 * span, multiplier=CRISIS_MULTIPLIER
        )  # fmt: skip
        flood = SyntheticFeed(
            "bot-flood", rate * FLOOD_ORGANIC_SHARE, seed=seed + 1, subject="云帆手机", start_s=0.15 * span,
            every_s=span, burst_s=min(30.0, 0.2 * span), intensity=8.0, bursts=1,
        )  # fmt: skip
        self.feeds = [_Feed(settings, crisis, duration), _Feed(settings, flood, duration)]

    def start(self) -> None:
        for feed in self.feeds:
            feed.start()

    def is_alive(self) -> bool:
        return any(feed.is_alive() for feed in self.feeds)

    def join(self) -> None:
        for feed in self.feeds:
            feed.join()

    def stop(self) -> None:
        for feed in self.feeds:
            feed.stopping.set()
        self.join()

    @property
    def accepted(self) -> int:
        return sum(feed.ingestor.stats.accepted for feed in self.feeds)

    @property
    def rejected(self) -> int:
        return sum(feed.ingestor.stats.rejected for feed in self.feeds)


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it now, else any free port (for the demo's dashboard)."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise ServiceError("no free port for the dashboard")


def _wait_drained(live: RedisLive, expected: int, stall_s: float, report: Advance | None = None) -> int:
    """Wait until ``expected`` posts are counted, for as long as the count keeps growing."""
    counted, last_progress = live.total(DAY_MINUTES), time.monotonic()
    while counted < expected and time.monotonic() - last_progress < stall_s:
        time.sleep(0.5)
        now_counted = live.total(DAY_MINUTES)
        if now_counted > counted:
            counted, last_progress = now_counted, time.monotonic()
            if report is not None:
                report(counted)
    return counted


def run_demo(base: Settings, duration: float | None, requested_rate: float, live_view: bool) -> dict[str, Any]:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    chdb_dir = DEMO_DIR / "chdb"
    shutil.rmtree(chdb_dir, ignore_errors=True)
    started = time.monotonic()
    with ExitStack() as stack:
        broker = stack.enter_context(tansu_broker(log_path=DEMO_DIR / "broker.log"))
        redis_url = stack.enter_context(redis_or_valkey(base.redis_url.get_secret_value()))
        port = free_port(base.api_port)
        dashboard = f"http://127.0.0.1:{port}"
        settings = base.model_copy(
            update={
                "broker": broker.address,
                "redis_url": type(base.redis_url)(redis_url),
                "redis_prefix": DEMO_PREFIX,
                "clickhouse_url": type(base.clickhouse_url)(f"chdb://{chdb_dir}"),
                "worker_group": "yuqing-demo",
                "subjects_file": DEMO_SUBJECTS,
                "api_port": port,
                "dashboard_url": dashboard,
            }
        )
        delete_prefix(connect(settings), DEMO_PREFIX)  # counts and the subject store: seeded anew
        ensure_topics(settings)
        seed = int(time.time())
        model_rate = scoring_rate(settings, seed)
        rate = affordable_rate(requested_rate, model_rate)
        if rate < requested_rate:
            print(f"the model scores {model_rate:.0f} posts/s here: the demo runs at {rate} posts/s", file=sys.stderr)
        worker = start_worker(settings, DEMO_DIR / "worker.log", with_api=True)
        stack.callback(stop_worker, worker)
        backfilled = backfill(settings, rate * (1 + FLOOD_ORGANIC_SHARE), seed + 2, BACKFILL_MINUTES)
        # Live only once the history is scored: the detectors have their baselines, and the crisis is
        # seen as it happens rather than behind a backlog.
        live = RedisLive(settings)
        if not show_progress(live_view):  # the bar says as much, with a count, rate and time left
            print(f"scoring {backfilled} posts of history ({BACKFILL_MINUTES} minutes) …", file=sys.stderr)
        description = f"scoring {BACKFILL_MINUTES} minutes of history"
        with progress_bar(description, backfilled, enabled=live_view) as report:
            _wait_drained(live, backfilled, DRAIN_STALL_S, report)
        feeds = DemoFeeds(settings, rate, duration, seed)
        feeds.start()
        try:
            if live_view:
                from pipeline.devkit.demo_view import show_live

                show_live(live, feeds, worker, dashboard)
            else:
                feeds.join()
        except KeyboardInterrupt:
            feeds.stop()
        ingested = backfilled + feeds.accepted
        redis_total = _wait_drained(live, ingested, DRAIN_STALL_S)
        stop_worker(worker)
        scored = len(distinct_keys(settings, settings.topic_scored))
        from pipeline.stores.clickhouse.history import ClickHouseHistory

        with ClickHouseHistory.from_url(settings.clickhouse_url.get_secret_value()) as history:
            clickhouse_total = history.total_posts()
        subjects = subject_summary(live, DAY_MINUTES)
        alerts = [_alert_summary(alert) for alert in AlertStore(connect(settings), DEMO_PREFIX).find(limit=100)]
    return {
        "rate": rate,
        "model_posts_per_s": round(model_rate, 1),
        "ingested": ingested,
        "backfilled": backfilled,
        "rejected": feeds.rejected,
        "scored": scored,
        "redis_total": redis_total,
        "redis_deduplicated": live.total(DAY_MINUTES, deduplicated=True),
        "clickhouse_total": clickhouse_total,
        "alerts": alerts,
        "dashboard": dashboard,
        "subjects": subjects,
        "seconds": round(time.monotonic() - started, 1),
        "worker_exit_code": worker.returncode,
    }


def _alert_summary(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "subject": alert.subject,
        "kind": alert.kind,
        "state": alert.state,
        "severity": alert.severity,
        "started_at": alert.started_at.isoformat(),
        "observed": alert.evidence.get("observed"),
        "expected": alert.evidence.get("expected"),
    }


def subject_summary(live: RedisLive, minutes: int, hot_words: int = 5) -> dict[str, dict[str, Any]]:
    """Per subject over the window: raw and deduplicated posts, negative share, top hot words."""
    summary = {}
    for row in window_rows(live, minutes):
        name = row["subject"]
        words = live.hot_words(name, minutes, hot_words)
        summary[name] = {
            "raw": row["total"],
            "deduplicated": row["deduplicated"],
            "negative_share": row["deduplicated_negative_share"],
            "hot_words": [term for term, _count in words],
        }
    return summary
