"""Build the sinks a worker writes to, from settings."""

from __future__ import annotations

from pipeline.settings import Settings
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.live import RedisSink
from pipeline.stores.sink import Sink


def build_sinks(settings: Settings) -> list[Sink]:
    history = ClickHouseSink(
        settings.clickhouse_url.get_secret_value(),
        retention_days=settings.personal_data_retention_days,
        redis_url=settings.redis_url.get_secret_value(),
    )
    return [RedisSink(settings), history]
