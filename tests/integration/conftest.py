"""Fixtures of the integration tests: real services only."""

from datetime import UTC, datetime

import pytest

from tests.integration import test_redis_sink
from tests.integration.conftest_clickhouse import chdb_folder, clickhouse_server_url, clickhouse_url  # noqa: F401
from tests.integration.services import broker, redis_url, settings, test_id  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_now() -> None:
    """Posts built with ``test_redis_sink.scored`` are stamped at the start of each test, not at
    collection: live windows are relative to the real now, and a suite can run for many minutes."""
    test_redis_sink.NOW = datetime.now(UTC).replace(microsecond=0)
