"""Build the sinks a worker writes to, from settings."""

from __future__ import annotations

from pipeline.settings import Settings
from pipeline.sinks.base import Sink
from pipeline.sinks.clickhouse import ClickHouseSink
from pipeline.sinks.redis_live import RedisSink


def build_sinks(settings: Settings) -> list[Sink]:
    return [RedisSink(settings), ClickHouseSink.from_url(settings.clickhouse_url.get_secret_value())]
