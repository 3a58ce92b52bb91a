"""Posts go in through Kafka and come out exactly once in Redis and ClickHouse, even across crashes."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.domain.text.clean import clean
from pipeline.kafka import distinct_keys
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.live import RedisLive
from schemas.records import Post
from tests.support.feeds import N, produce
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import WorkerFactory, wait_until
from workers.app import CRASH_EXIT_CODE
from workers.scoring.loading import load_scorer
from workers.scoring.options import RuntimeOptions
from workers.stages import subjects_of

pytestmark = pytest.mark.e2e
GRACE_S = 5.0  # the worker's stop grace period in the SIGTERM test
# Two flushes of one 64-post micro-batch each, so the crash comes with part of the posts stored.
MIDWAY_CRASH = {"test_crash_after_flushes": 2, "batch_max_items": 64, "history_insert_min_posts": 1}


def expected_counts(settings: Settings, posts: list[Post]) -> Counter[tuple[str, str]]:
    """What the scorer says, computed here independently of the workers."""
    texts = [clean(p.text).content or p.text for p in posts]  # what the workers feed the model
    predictions = load_scorer(settings.model_path, options=RuntimeOptions.from_settings(settings)).predict(texts)
    expected: Counter[tuple[str, str]] = Counter()
    for post, prediction in zip(posts, predictions, strict=True):
        for subject in subjects_of(post):
            expected[(subject, prediction.label)] += 1
    return expected


def assert_exact(settings: Settings, posts: list[Post]) -> None:
    live = RedisLive(settings)
    wait_until(lambda: live.total(30) >= len(posts), 180, f"{len(posts)} posts counted in Redis")
    expected = expected_counts(settings, posts)
    redis_counts: Counter[tuple[str, str]] = Counter()
    for (subject, _platform, sentiment), count in live.window_counts(30).items():
        if subject != "*":
            redis_counts[(subject, sentiment)] += count
    assert live.total(30) == len(posts)
    assert redis_counts == expected
    history = ClickHouseHistory(settings.clickhouse_url.get_secret_value())
    try:
        wait_until(lambda: history.total_posts() >= len(posts), 30, "posts in ClickHouse")
        assert history.total_posts() == len(posts)
        assert Counter(history.subject_sentiment_counts()) == expected
    finally:
        history.close()
    assert len(distinct_keys(settings, settings.topic_scored)) == len(posts)


def test_every_post_counted_exactly_once(e2e_settings: Settings, workers: WorkerFactory) -> None:
    posts = produce(e2e_settings)
    workers(e2e_settings)
    assert_exact(e2e_settings, posts)


def test_crash_between_flush_and_commit_loses_and_doubles_nothing(
    e2e_settings: Settings, workers: WorkerFactory
) -> None:
    posts = produce(e2e_settings)
    crashing = e2e_settings.model_copy(update=MIDWAY_CRASH)
    first = workers(crashing)
    assert first.wait(180) == CRASH_EXIT_CODE  # it flushed twice, then died before committing
    assert 0 < RedisLive(e2e_settings).total(30) < N
    workers(e2e_settings)
    assert_exact(e2e_settings, posts)


def test_split_agents_count_every_post_exactly_once_across_a_storing_crash(
    e2e_settings: Settings, workers: WorkerFactory
) -> None:
    """A scoring worker and a storing worker, each with its agent alone in its own group: the storing
    one dies between a flush and its commit, and its successor stores the rest once."""
    posts = produce(e2e_settings)
    workers(e2e_settings.model_copy(update={"worker_agents": "score"}))
    storing = e2e_settings.model_copy(update={"worker_agents": "aggregate"})
    crashing = storing.model_copy(update=MIDWAY_CRASH)
    assert workers(crashing).wait(180) == CRASH_EXIT_CODE
    assert 0 < RedisLive(e2e_settings).total(30) < N
    workers(storing)
    assert_exact(e2e_settings, posts)


def test_worker_killed_mid_stream_then_restarted(e2e_settings: Settings, workers: WorkerFactory) -> None:
    posts = produce(e2e_settings)
    slow = e2e_settings.model_copy(update={"batch_max_items": 32})
    first = workers(slow)
    live = RedisLive(e2e_settings)
    wait_until(lambda: live.total(30) > 0, 120, "the first flush")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    workers(e2e_settings)
    assert_exact(e2e_settings, posts)


def test_redis_and_clickhouse_outages_neither_lose_nor_double(
    e2e_settings: Settings, workers: WorkerFactory, tmp_path: Path
) -> None:
    posts = produce(e2e_settings)
    redis_port = urlsplit(e2e_settings.redis_url.get_secret_value()).port or 6379
    ch = urlsplit(e2e_settings.clickhouse_url.get_secret_value())
    with TcpProxy(redis_port) as redis_proxy, TcpProxy(ch.port or 9000) as ch_proxy:
        ch_netloc = ch.netloc.replace(f":{ch.port}", f":{ch_proxy.port}")
        proxied = e2e_settings.model_copy(
            update={
                "redis_url": type(e2e_settings.redis_url)(f"redis://127.0.0.1:{redis_proxy.port}/0"),
                "clickhouse_url": type(e2e_settings.clickhouse_url)(urlunsplit(ch._replace(netloc=ch_netloc))),
                "batch_max_items": 8,
            }
        )
        live = RedisLive(e2e_settings)  # reads Redis directly, past the proxy
        workers(proxied)
        for proxy in (redis_proxy, ch_proxy):
            wait_until(lambda: live.total(30) > 0, 120, "a flush")
            proxy.cut()
            time.sleep(1)  # a flush in flight when the link dropped may still land
            stalled = live.total(30)
            time.sleep(3)
            assert live.total(30) == stalled < N  # nothing is counted while a store is away
            proxy.restore()
            wait_until(lambda: live.total(30) > stalled, 60, "counting to resume")  # noqa: B023
        assert_exact(e2e_settings, posts)
    log = (tmp_path / "worker-0.log").read_text()
    assert "redis sink unavailable" in log and "clickhouse sink unavailable" in log


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_sigterm_while_clickhouse_is_away_stops_the_worker_and_acks_nothing_unstored(
    e2e_settings: Settings, workers: WorkerFactory, tmp_path: Path, fault: str
) -> None:
    """A worker waiting out a ClickHouse outage (refused, or a server that stopped answering) still
    stops on SIGTERM within its grace period; the batches it could not store are replayed by the next
    worker, so every post is counted exactly once."""
    posts = produce(e2e_settings)
    ch = urlsplit(e2e_settings.clickhouse_url.get_secret_value())
    with TcpProxy(ch.port or 9000) as ch_proxy:
        ch_netloc = ch.netloc.replace(f":{ch.port}", f":{ch_proxy.port}")
        proxied = e2e_settings.model_copy(
            update={
                "clickhouse_url": type(e2e_settings.clickhouse_url)(urlunsplit(ch._replace(netloc=ch_netloc))),
                "batch_max_items": 8,
                "worker_stop_grace_s": GRACE_S,
            }
        )
        live = RedisLive(e2e_settings)
        worker = workers(proxied)
        wait_until(lambda: live.total(30) > 0, 120, "a flush")
        getattr(ch_proxy, fault)()
        log = tmp_path / "worker-0.log"
        wait_until(lambda: "clickhouse sink unavailable" in log.read_text(), 120, "the sink retrying")
        assert live.total(30) < N  # the worker is stuck behind the store, not done
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(GRACE_S + 30)  # raises if the worker hangs
        print(f"stopped {time.monotonic() - started:.1f} s after SIGTERM ({fault})")
        assert worker.returncode == CRASH_EXIT_CODE  # left without acking the unstored batch
    workers(e2e_settings)  # the next worker, straight to ClickHouse
    assert_exact(e2e_settings, posts)
