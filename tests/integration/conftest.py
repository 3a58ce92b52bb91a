"""Fixtures of the integration tests: real services only."""

from tests.integration.conftest_clickhouse import chdb_folder, clickhouse_server_url, clickhouse_url  # noqa: F401
from tests.integration.services import broker, redis_url, settings, test_id  # noqa: F401
