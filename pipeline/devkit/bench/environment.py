"""The embedded services a benchmark runs on: its own tansu broker, Redis (or valkey) and chDB folder."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pipeline.devkit.embedded_services import redis_or_valkey, tansu_broker
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.stores.redis.live import connect, delete_prefix


@contextmanager
def bench_environment(base: Settings, name: str, **overrides: object) -> Iterator[tuple[Settings, Path]]:
    """Settings on fresh embedded services with names of this run, and a work folder; all removed after."""
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
                "clickhouse_url": type(base.clickhouse_url)(f"chdb://{workdir / 'chdb'}"),
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
