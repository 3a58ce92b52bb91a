"""Pure parts of the ClickHouse history store: rows, URLs, escaping, placeholders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.stores.clickhouse.engines import (
    DEFAULT_DATABASE,
    parse_engine_url,
    to_driver_placeholders,
    tsv_escape,
)
from pipeline.stores.clickhouse.sink import COLUMNS, scored_post_row
from schemas.records import Engagement, Post, ScoredPost, SentimentProbabilities


def scored(**post_fields: object) -> ScoredPost:
    fields: dict[str, object] = {
        "id": "p1",
        "platform": "weibo",
        "author_id": "a1",
        "text": "你好",
        "event_time": datetime(2024, 5, 1, 20, 3, 4, 987654, tzinfo=timezone(timedelta(hours=8))),
    }
    fields.update(post_fields)
    return ScoredPost(
        post=Post.model_validate(fields),
        sentiment="negative",
        probabilities=SentimentProbabilities(negative=0.7, neutral=0.2, positive=0.1),
        subjects=("brand_a", "brand_b"),
        cluster_id=str(fields["id"]),
        model_id="m",
        model_version="3",
        scored_at=datetime(2024, 5, 1, 12, 5, 0, 5, tzinfo=UTC),
        processing_ms=4.5,
    )


def as_dict(post: ScoredPost) -> dict[str, object]:
    row = scored_post_row(post)
    assert len(row) == len(COLUMNS)
    return dict(zip(COLUMNS, row, strict=True))


def test_row_holds_every_column_in_utc_whole_seconds() -> None:
    row = as_dict(scored())
    assert row["post_id"] == "p1" and row["platform"] == "weibo" and row["author_id"] == "a1"
    assert row["event_time"] == datetime(2024, 5, 1, 12, 3, 4, tzinfo=UTC)
    assert row["minute"] == datetime(2024, 5, 1, 12, 3, tzinfo=UTC)
    assert row["scored_at"] == datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    assert row["subjects"] == ["brand_a", "brand_b"] and row["hashtags"] == []
    assert (row["sentiment"], row["p_negative"], row["p_neutral"], row["p_positive"]) == ("negative", 0.7, 0.2, 0.1)
    assert (row["model_id"], row["model_version"], row["processing_ms"]) == ("m", "3", 4.5)
    assert row["text_truncated"] == 0


def test_missing_optionals_become_empty_strings() -> None:
    row = as_dict(scored())
    assert (row["lang"], row["url"], row["parent_id"], row["parent_kind"]) == ("", "", "", "")


def test_optionals_and_engagement_are_kept() -> None:
    row = as_dict(
        scored(
            lang="zh",
            url="https://x/1",
            parent_id="p0",
            parent_kind="repost",
            text_truncated=True,
            hashtags=("a", "b"),
            engagement=Engagement(likes=3, reposts=4, comments=5),
        )
    )
    assert (row["lang"], row["url"], row["parent_id"], row["parent_kind"]) == ("zh", "https://x/1", "p0", "repost")
    assert (row["likes"], row["reposts"], row["comments"], row["text_truncated"]) == (3, 4, 5, 1)
    assert row["hashtags"] == ["a", "b"]


def test_engagement_is_clamped_to_uint32() -> None:
    row = as_dict(scored(engagement=Engagement(likes=2**40)))
    assert row["likes"] == 2**32 - 1


def test_naive_event_time_is_utc() -> None:
    row = as_dict(scored(event_time=datetime(2024, 1, 1, 0, 0, 59)))
    assert row["minute"] == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "database", "target"),
    [
        ("clickhouse://default@127.0.0.1:9000/", DEFAULT_DATABASE, "clickhouse://default@127.0.0.1:9000"),
        ("clickhouse://default@127.0.0.1:9000", DEFAULT_DATABASE, "clickhouse://default@127.0.0.1:9000"),
        ("clickhouse://u:p%40ss@h:9001/hist", "hist", "clickhouse://u:p%40ss@h:9001"),
        (
            "clickhouses://u@h:9440/hist?connect_timeout=2",
            "hist",
            "clickhouses://u@h:9440?connect_timeout=2",
        ),
    ],
)
def test_server_urls(url: str, database: str, target: str) -> None:
    parsed = parse_engine_url(url)
    assert (parsed.kind, parsed.database, parsed.target) == ("server", database, target)


def test_chdb_relative_path_is_resolved_not_taken_for_a_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = parse_engine_url("chdb://.yuqing/chdb")
    assert (parsed.kind, parsed.database, parsed.target) == ("chdb", DEFAULT_DATABASE, str(tmp_path / ".yuqing/chdb"))


def test_chdb_absolute_path_and_database() -> None:
    parsed = parse_engine_url("chdb:///var/lib/yq?database=hist")
    assert (parsed.kind, parsed.database, parsed.target) == ("chdb", "hist", "/var/lib/yq")


@pytest.mark.parametrize(
    "url",
    [
        "redis://h/0",
        "127.0.0.1:9000",
        "chdb://",
        "chdb://x?database=a-b",
        "clickhouse://h/db;drop",
        "clickhouse://h/1db",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_engine_url(url)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a\\b", "a\\\\b"),
        ("tab\there", "tab\\there"),
        ("line\nbreak\r", "line\\nbreak\\r"),
        ("nul\0", "nul\\0"),
        ("\\N", "\\\\N"),  # must not read back as NULL
        ("it's {x:String}", "it's {x:String}"),  # quotes and braces need no escaping in a value
    ],
)
def test_tsv_escape(raw: str, escaped: str) -> None:
    assert tsv_escape(raw) == escaped


def test_driver_placeholders() -> None:
    sql = "SELECT 1 WHERE a = {a:String} AND b < toDateTime({b:UInt32}) AND c LIKE '%x' AND d = {d:DateTime('UTC')}"
    assert to_driver_placeholders(sql) == (
        "SELECT 1 WHERE a = %(a)s AND b < toDateTime(%(b)s) AND c LIKE '%%x' AND d = %(d)s"
    )
