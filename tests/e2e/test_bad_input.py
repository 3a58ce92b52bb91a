"""Another producer writes every kind of bad record straight onto posts.raw, among good posts: the worker
dead-letters each with its reason, goes on, and the counts reconcile."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaProducer

from pipeline.domain.posts import MAX_RECORD_BYTES
from pipeline.kafka import ensure_topics, read_topic
from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.live import RedisLive
from tests.support.bad_inputs import BAD_INPUTS, good
from tests.support.waiting import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e
GOOD_POSTS = 50
# Kafka refuses a record over its message size itself (the producer raises): such records never reach
# posts.raw, so they are the validator's business alone (tests/unit/domain/test_posts.py).
ON_THE_TOPIC = [(kind, raw, reason) for kind, raw, reason in BAD_INPUTS if len(raw) < MAX_RECORD_BYTES]


def test_every_bad_kind_is_dead_lettered_and_the_good_posts_counted(
    e2e_settings: Settings, workers: WorkerFactory
) -> None:
    ensure_topics(e2e_settings)
    producer = KafkaProducer(bootstrap_servers=e2e_settings.broker, max_request_size=2 * MAX_RECORD_BYTES)
    goods = [json.dumps(good(f"g{i}", hashtags=["乳业"]), ensure_ascii=False).encode() for i in range(GOOD_POSTS)]
    records = [raw for _, raw, _ in ON_THE_TOPIC]
    for i, raw in enumerate(goods + records):
        producer.send(e2e_settings.topic_raw, key=f"k{i}".encode(), value=raw)
    producer.flush()
    producer.close()

    worker = workers(e2e_settings)
    live = RedisLive(e2e_settings)
    wait_until(lambda: live.total(30) >= GOOD_POSTS, 180, "the good posts counted in Redis")

    def dead_letters() -> list[dict[str, str]]:
        return [json.loads(value) for _, value in read_topic(e2e_settings, e2e_settings.topic_dlq) if value]

    wait_until(lambda: len(dead_letters()) >= len(ON_THE_TOPIC), 60, "every bad record dead-lettered")
    assert worker.poll() is None  # nothing stopped it
    letters = dead_letters()
    assert len(letters) == len(ON_THE_TOPIC) and {letter["stage"] for letter in letters} == {"score"}
    reasons = sorted(letter["reason"] for letter in letters)
    for kind, _, fragment in ON_THE_TOPIC:
        assert any(fragment in reason for reason in reasons), (kind, fragment)
    assert live.total(30) == GOOD_POSTS
    history = ClickHouseHistory(e2e_settings.clickhouse_url.get_secret_value())
    try:
        wait_until(lambda: history.total_posts() >= GOOD_POSTS, 30, "the good posts in ClickHouse")
        assert history.total_posts() == GOOD_POSTS
    finally:
        history.close()
    assert len(read_topic(e2e_settings, e2e_settings.topic_scored)) == GOOD_POSTS
