"""Two workers in one consumer group, with a rebalance, a graceful stop and a hard kill on the way:
5,000 posts are counted exactly once, each with one sentiment, and every offset is committed."""

from __future__ import annotations

import contextlib
import json
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics, read_topic
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.live import RedisLive
from tests.support.paths import MODELS
from tests.support.require import require_service
from tests.support.waiting import WorkerFactory, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
PHASES = (1500, 1500, 1000, 1000)  # 5,000 posts, produced while the group changes


def log_ends(settings: Settings, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    """The offset after each partition's last record, read from the records themselves: tansu's
    ListOffsets answers the last batch's base offset plus one, short of the end when batches hold several."""
    consumer = KafkaConsumer(bootstrap_servers=settings.broker, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = dict.fromkeys(partitions, 0)
        while batch := consumer.poll(timeout_ms=2000):
            for partition, records in batch.items():
                ends[partition] = max(ends[partition], records[-1].offset + 1)
        return ends
    finally:
        consumer.close()


def unconsumed(settings: Settings) -> dict[str, int]:
    """Messages of the raw and scored topics the group has not committed yet, by partition."""
    admin = KafkaAdminClient(bootstrap_servers=settings.broker)
    try:
        committed = admin.list_group_offsets(settings.worker_group)[settings.worker_group]
    finally:
        admin.close()
    ends = log_ends(settings, (settings.topic_raw, settings.topic_scored))
    behind = {tp: end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()}
    return {f"{tp.topic}[{tp.partition}]": lag for tp, lag in behind.items() if lag}


def test_two_workers_rebalance_stop_and_crash_without_losing_or_doubling(
    e2e_settings: Settings, workers: WorkerFactory
) -> None:
    baseline = MODELS / "baseline"
    require_service((baseline / "model.json").is_file(), f"no baseline at {baseline}: make model")
    # The TF-IDF model scores the same text the same way in any batch, so a replayed post gets the
    # sentiment it had: any second sentiment would be a double count, not rounding.
    settings = e2e_settings.model_copy(update={"model_path": baseline, "batch_max_items": 64})
    ensure_topics(settings)
    feed = SyntheticFeed("crisis", rate=25.0, seed=11, start=datetime.now(UTC) - timedelta(minutes=4))
    ingestor = Ingestor(settings)
    live = RedisLive(settings)

    def produce(n: int) -> None:
        for post in feed.take(n):
            ingestor.submit(post.model_dump(mode="json"))
        ingestor.flush()

    def counted(n: int, what: str) -> None:
        wait_until(lambda: live.total(30) >= n, 240, f"{n} posts counted ({what})")

    produce(PHASES[0])
    first = workers(settings)
    counted(500, "worker A alone")
    second = workers(settings)  # joins mid-stream: a rebalance
    produce(PHASES[1])
    counted(sum(PHASES[:2]), "A and B")
    first.send_signal(signal.SIGTERM)  # a graceful leave: another rebalance
    assert first.wait(60) == 0
    produce(PHASES[2])
    counted(sum(PHASES[:3]), "B alone")
    produce(PHASES[3])
    wait_until(lambda: live.total(30) > sum(PHASES[:3]), 120, "B busy with the last posts")
    second.kill()  # no goodbye: its uncommitted batches are replayed
    second.wait(30)
    workers(settings)
    total = sum(PHASES)
    counted(total, "after the restart")
    with contextlib.suppress(AssertionError):  # the assertion below names the partitions behind
        wait_until(lambda: not unconsumed(settings), 120, "every offset committed")

    assert unconsumed(settings) == {}
    assert ingestor.stats.accepted == total
    assert live.total(30) == total
    sentiments: dict[bytes, set[str]] = defaultdict(set)
    for key, value in read_topic(settings, settings.topic_scored):
        sentiments[key or b""].add(json.loads(value or b"{}")["sentiment"])
    assert len(sentiments) == total
    assert [key for key, seen in sentiments.items() if len(seen) > 1] == []
    history = ClickHouseHistory(settings.clickhouse_url.get_secret_value())
    try:
        wait_until(lambda: history.total_posts() >= total, 60, "every post in ClickHouse")
        assert history.total_posts() == total
        for deduplicated in (False, True):
            in_history = sum(history.subject_sentiment_counts(deduplicated=deduplicated).values())
            in_redis = sum(
                count
                for (subject, _platform, _sentiment), count in live.window_counts(30, deduplicated=deduplicated).items()
                if subject != "*"
            )
            assert in_history == in_redis, ("deduplicated" if deduplicated else "raw", in_history, in_redis)
    finally:
        history.close()
