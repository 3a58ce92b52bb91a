"""Retention of personal data in ClickHouse: past the configured days, a post's text, author id and URL
are blanked at the next merge while its counts stay; a server without column TTL keeps working."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.stores.clickhouse.engines import open_engine
from pipeline.stores.clickhouse.retention import PERSONAL_COLUMNS, apply_retention, current_ttl_days
from pipeline.stores.clickhouse.sink import ClickHouseSink
from tests.support.records import scored

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
DAYS = 30


def table_query(url: str) -> str:
    engine = open_engine(url)
    try:
        (row,) = engine.select(
            "SELECT create_table_query AS q FROM system.tables WHERE database = {db:String} AND name = 'scored_posts'",
            {"db": engine.database},
        )
        return str(row["q"])
    finally:
        engine.close()


def test_old_posts_lose_their_personal_columns_and_keep_their_counts(chdb_folder: str) -> None:
    """On chDB, a current ClickHouse (the 18.16 server has no column TTL: see the next test)."""
    clickhouse_url = f"chdb://{chdb_folder}?database=yq_retention_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    posts = [scored("old", "negative", at=now - timedelta(days=DAYS + 5)), scored("new", "negative", at=now)]
    with ClickHouseSink(clickhouse_url, retention_days=DAYS) as sink:
        sink.add(posts)
        sink.flush()
    engine = open_engine(clickhouse_url)
    try:
        engine.execute(f"OPTIMIZE TABLE {engine.database}.scored_posts FINAL")  # the merge that applies TTL
        rows = engine.select(
            "SELECT post_id, author_id, text, url, sentiment, subjects FROM {db}.scored_posts ORDER BY post_id".replace(
                "{db}", engine.database
            )
        )
    finally:
        engine.close()
    by_id = {row["post_id"]: row for row in rows}
    assert set(by_id) == {"new", "old"}  # both still counted
    assert (by_id["old"]["author_id"], by_id["old"]["text"], by_id["old"]["url"]) == ("", "", "")
    assert by_id["old"]["sentiment"] == "negative" and list(by_id["old"]["subjects"]) == ["云帆"]
    assert by_id["new"]["author_id"] == "a-new" and by_id["new"]["text"]


def test_retention_follows_the_setting_and_is_skipped_where_unsupported(
    clickhouse_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with ClickHouseSink(clickhouse_url, retention_days=DAYS) as sink:
        sink.add([scored("p1")])
        with caplog.at_level(logging.WARNING, logger="pipeline.stores.clickhouse.retention"):
            sink.flush()
    query = table_query(clickhouse_url)
    if "TTL" not in query:  # the 18.16 server: it warns and goes on
        assert "has no column TTL" in caplog.text
        return
    assert [current_ttl_days(query, column) for column in PERSONAL_COLUMNS] == [DAYS] * len(PERSONAL_COLUMNS)
    engine = open_engine(clickhouse_url)
    try:
        apply_retention(engine, 0)
        assert [current_ttl_days(table_query(clickhouse_url), c) for c in PERSONAL_COLUMNS] == [None, None, None]
        apply_retention(engine, 7)
        assert [current_ttl_days(table_query(clickhouse_url), c) for c in PERSONAL_COLUMNS] == [7, 7, 7]
    finally:
        engine.close()
