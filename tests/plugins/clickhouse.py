"""ClickHouse fixtures: a real 18.16 server (clickhouse-driver) and chDB in-process.

``clickhouse_url`` is parametrized over both engines and gives each test its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipeline.stores.clickhouse.engines import open_engine, parse_engine_url
from tests.support.require import require_service

SERVER_URL_ENV = "YUQING_TEST_CLICKHOUSE_URL"
DEFAULT_SERVER_URL = "clickhouse://default@127.0.0.1:9000/"


def _server_problem(url: str) -> str | None:
    """Why the server at ``url`` cannot be used, or None when it answers."""
    from clickhouse_driver import Client

    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + "connect_timeout=3"
    client = Client.from_url(urlunsplit((parts.scheme, parts.netloc, "", query, "")))
    try:
        client.execute("SELECT 1")
    except Exception as exc:  # whatever the reason, the tests cannot run against it
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        client.disconnect()
    return None


@pytest.fixture(scope="session")
def clickhouse_server_url() -> str:
    """The test server's URL (no database); skips locally, fails in CI, when it does not answer."""
    url = os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL)
    problem = _server_problem(url)
    require_service(
        problem is None,
        f"ClickHouse server at {url} ({SERVER_URL_ENV}) does not answer: {problem}; "
        "start one with tests/services/clickhouse.sh",
    )
    return url


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB data folder of this test process: chDB allows one folder per process."""
    return str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture(params=["server", "chdb"])
def clickhouse_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a fresh, empty database, on the server and then on chDB; dropped afterwards."""
    database = f"yq_test_{uuid.uuid4().hex[:12]}"
    if request.param == "server":
        base = urlsplit(request.getfixturevalue("clickhouse_server_url"))
        url = urlunsplit((base.scheme, base.netloc, f"/{database}", base.query, ""))
    else:
        url = f"chdb://{request.getfixturevalue('chdb_folder')}?database={database}"
    yield url
    engine = open_engine(url)
    try:
        engine.execute(f"DROP DATABASE IF EXISTS {parse_engine_url(url).database}")
    finally:
        engine.close()
