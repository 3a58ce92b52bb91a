"""Workers serve a Transformer folder by setting, end to end, with the same exact-once counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from pipeline.settings import Settings
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.live import RedisLive
from schemas.records import ScoredPost
from tests.support.feeds import produce
from tests.support.tiny_transformer import build_tiny
from tests.support.waiting import WorkerFactory, wait_until

pytestmark = pytest.mark.e2e


def _scored_posts(settings: Settings) -> list[ScoredPost]:
    consumer = KafkaConsumer(
        settings.topic_scored,
        bootstrap_servers=settings.broker,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [ScoredPost.model_validate_json(message.value) for message in consumer]
    finally:
        consumer.close()


def test_worker_scores_with_a_transformer_folder(
    e2e_settings: Settings, workers: WorkerFactory, tmp_path: Path
) -> None:
    folder = build_tiny(tmp_path / "tiny-model", card={})
    settings = e2e_settings.model_copy(update={"model_path": folder})
    posts = produce(settings, 150)
    workers(settings)
    live = RedisLive(settings)
    wait_until(lambda: live.total(30) >= len(posts), 180, "every post counted")

    scored = _scored_posts(settings)
    assert {s.model_id for s in scored} == {"tiny-test"}
    assert len({s.post.id for s in scored}) == len(posts)
    redis_counts: Counter[tuple[str, str]] = Counter()
    for (subject, _platform, sentiment), count in live.window_counts(30).items():
        if subject != "*":
            redis_counts[(subject, sentiment)] += count
    with ClickHouseHistory(settings.clickhouse_url.get_secret_value()) as history:
        assert history.total_posts() == len(posts) == live.total(30)
        assert Counter(history.subject_sentiment_counts()) == redis_counts
