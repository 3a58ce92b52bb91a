"""The embedded services a benchmark runs on: its own tansu broker, Redis (or valkey) and chDB folder."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.devkit.embedded_services import redis_or_valkey, tansu_broker
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.stores.clickhouse.engines import open_engine
from pipeline.stores.redis.live import connect, delete_prefix


def server_database(url: str, database: str) -> str:
    """A ``clickhouse://`` server URL with its database replaced."""
    if not url.startswith(("clickhouse://", "clickhouses://")):
        raise ValueError(f"YUQING_CLICKHOUSE_URL is not a server's clickhouse:// URL: {url.split(':')[0]}://…")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@contextmanager
def bench_environment(
    base: Settings, name: str, *, clickhouse_server: bool = False, **overrides: object
) -> Iterator[tuple[Settings, Path]]:
    """Settings on fresh embedded services with names of this run, and a work folder; all removed after.

    ``clickhouse_server`` keeps the base settings' ClickHouse server, in a database of this run, instead of
    chDB in the worker's own process (whose caches would count in the worker's memory)."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"yuqing-bench-{name}-")))
        broker = stack.enter_context(tansu_broker(log_path=workdir / "broker.log"))
        redis_url = stack.enter_context(redis_or_valkey(base.redis_url.get_secret_value()))
        run_id = uuid.uuid4().hex[:8]
        settings = base.model_copy(
            update={
                "broker": broker.address,
                "redis_url": type(base.redis_url)(redis_url),
                "redis_prefix": f"yqbench-{name}-{run_id}",
                "clickhouse_url": type(base.clickhouse_url)(
                    server_database(base.clickhouse_url.get_secret_value(), f"yqbench_{name}_{run_id}")
                    if clickhouse_server
                    else f"chdb://{workdir / 'chdb'}"
                ),
                "worker_group": f"yuqing-bench-{name}-{run_id}",
                "model_path": base.model_path.resolve(),
                **overrides,
            }
        )
        ensure_topics(settings)
        try:
            yield settings, workdir
        finally:
            delete_prefix(connect(settings), settings.redis_prefix)
            if clickhouse_server:
                engine = open_engine(settings.clickhouse_url.get_secret_value())
                engine.execute(f"DROP DATABASE IF EXISTS {engine.database}")
