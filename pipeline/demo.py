"""``yuqing demo``: the whole pipeline on one machine, on the embedded default services.

The demo owns its data: a Redis key prefix and a chDB folder of its own, both emptied at start,
so the totals it prints are this run's and are counted back from the stores themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pipeline.ingest.producer import Ingestor
from pipeline.kafka import distinct_keys, ensure_topics
from pipeline.services import redis_or_valkey, tansu_broker
from pipeline.settings import Settings, settings_env
from pipeline.sinks.redis_live import RedisLive, connect, delete_prefix

DEMO_PREFIX = "yqdemo"
DEMO_DIR = Path(".yuqing/demo")
DRAIN_TIMEOUT_S = 120.0


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """A worker in its own process, as in production; its settings travel in the environment."""
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "WARNING"]
    with log_path.open("ab") as log:
        # Its own session, so Ctrl-C reaches only the demo, which then drains and stops it in order.
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Feed(threading.Thread):
    """Runs the synthetic crisis feed in real time until stopped or its duration is over."""

    def __init__(self, ingestor: Ingestor, rate: float, duration: float | None) -> None:
        super().__init__(name="yuqing-demo-feed", daemon=True)
        from pipeline.ingest.synthetic import SyntheticFeed

        # The crisis fills the middle of the run so it is seen rising and easing within the demo.
        span = duration or 180.0
        self._feed = SyntheticFeed(
            "crisis", rate, seed=int(time.time()), start_s=0.3 * span, duration_s=0.5 * span, multiplier=8.0
        )
        self._ingestor = ingestor
        self._duration = duration
        self.stopping = threading.Event()

    def run(self) -> None:
        for post in self._feed.paced(self._duration):
            if self.stopping.is_set():
                break
            self._ingestor.submit(post.model_dump(mode="json"))
        self._ingestor.flush()


def _wait_drained(live: RedisLive, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    counted = live.total(60 * 24)
    while counted < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        counted = live.total(60 * 24)
    return counted


def run_demo(base: Settings, duration: float | None, rate: float, live_view: bool) -> dict[str, Any]:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    chdb_dir = DEMO_DIR / "chdb"
    shutil.rmtree(chdb_dir, ignore_errors=True)
    started = time.monotonic()
    with ExitStack() as stack:
        broker = stack.enter_context(tansu_broker(log_path=DEMO_DIR / "broker.log"))
        redis_url = stack.enter_context(redis_or_valkey(base.redis_url.get_secret_value()))
        settings = base.model_copy(
            update={
                "broker": broker.address,
                "redis_url": type(base.redis_url)(redis_url),
                "redis_prefix": DEMO_PREFIX,
                "clickhouse_url": type(base.clickhouse_url)(f"chdb://{chdb_dir}"),
                "worker_group": "yuqing-demo",
            }
        )
        delete_prefix(connect(settings), DEMO_PREFIX)
        ensure_topics(settings)
        worker = start_worker(settings, DEMO_DIR / "worker.log")
        stack.callback(stop_worker, worker)
        ingestor = Ingestor(settings)
        feed = _Feed(ingestor, rate, duration)
        live = RedisLive(settings)
        feed.start()
        try:
            if live_view:
                from pipeline.demo_view import show_live

                show_live(live, ingestor, feed, worker)
            else:
                feed.join()
        except KeyboardInterrupt:
            feed.stopping.set()
            feed.join()
        accepted = ingestor.stats.accepted
        redis_total = _wait_drained(live, accepted, DRAIN_TIMEOUT_S)
        stop_worker(worker)
        scored = len(distinct_keys(settings, settings.topic_scored))
        from pipeline.sinks.clickhouse import ClickHouseHistory

        with ClickHouseHistory.from_url(settings.clickhouse_url.get_secret_value()) as history:
            clickhouse_total = history.total_posts()
        top = live.top_subjects(60 * 24, 5)
    return {
        "ingested": accepted,
        "rejected": ingestor.stats.rejected,
        "scored": scored,
        "redis_total": redis_total,
        "clickhouse_total": clickhouse_total,
        "alerts": [],
        "top_subjects": dict(top),
        "seconds": round(time.monotonic() - started, 1),
        "worker_exit_code": worker.returncode,
    }
