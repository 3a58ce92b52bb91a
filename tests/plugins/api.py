"""API fixtures: each API test runs a real ``ApiServer`` (uvicorn in a thread, on a free port).

It runs against the machine's Redis under a prefix of its own; tests of ClickHouse endpoints also take
``clickhouse_url``, which runs them on the 18.16 server and on chDB.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from pipeline.stores.redis.live import delete_prefix
from tests.support.api import Served, ServeFactory


@pytest.fixture
def api_settings(redis_url: str, test_id: str, chdb_folder: str) -> Iterator[Settings]:
    """Settings of one API test: its own Redis prefix; ClickHouse is only opened if a test asks."""
    made = Settings(
        redis_url=SecretStr(redis_url),
        redis_prefix=f"yqtest-api-{test_id}",
        clickhouse_url=SecretStr(f"chdb://{chdb_folder}?database=yq_api_{test_id}"),
        dashboard_url="http://dashboard.test",
    )
    yield made
    delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), made.redis_prefix)


@pytest.fixture
def serve(api_settings: Settings) -> Iterator[ServeFactory]:
    """Start API servers: ``serve(tokens=TOKENS, cors="...", clickhouse_url=...)``; all stopped after."""
    running: list[Served] = []

    def start(
        *, tokens: str = "", cors: str = "", clickhouse_url: str | None = None, heartbeat_s: float = 0.5
    ) -> Served:
        update: dict[str, object] = {"api_tokens": SecretStr(tokens), "api_cors_origins": cors}
        if clickhouse_url is not None:
            update["clickhouse_url"] = SecretStr(clickhouse_url)
        settings = api_settings.model_copy(update=update)
        server = ApiServer(settings, "127.0.0.1", 0, heartbeat_s=heartbeat_s)
        server.start()
        served = Served(server, httpx.Client(base_url=server.url, timeout=20), settings)
        running.append(served)
        return served

    yield start
    for served in running:
        served.client.close()
        served.server.stop()


@pytest.fixture
def api(serve: ServeFactory) -> Served:
    """An API in open mode (no tokens: read without one, no admin)."""
    return serve()
