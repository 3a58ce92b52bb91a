"""ClickHouse migrations against the real engines (the 18.16 server and chDB): a v1 database keeps its rows
through the upgrade, a second run applies nothing, concurrent runs apply each migration once, and an edited
released file is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from pipeline.stores.clickhouse.engines import Engine, open_engine
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.clickhouse.migrations import (
    LEDGER,
    Applied,
    MigrationError,
    load_migrations,
    lock_key,
    migrate,
    migrations_folder,
    redis_lock,
    statements_to_run,
)
from pipeline.stores.clickhouse.sink import COLUMNS, ClickHouseSink, scored_post_row
from tests.support.records import now_minute, scored

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

V2_COLUMNS = ("monitored", "detected_lang", "terms", "cluster_id", "is_duplicate", "suspected_bot", "noise_reasons")
V1_COLUMNS = tuple(column for column in COLUMNS if column not in V2_COLUMNS)


@pytest.fixture
def engine(clickhouse_url: str, redis_url: str) -> Iterator[Engine]:
    opened = open_engine(clickhouse_url)
    try:
        yield opened
    finally:
        opened.close()


def schema(engine: Engine) -> dict[str, list[tuple[str, str]]]:
    """Every table of the database with its columns, in their order."""
    rows = engine.select(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String}", {"db": engine.database}
    )
    tables: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        tables.setdefault(str(row["table"]), []).append((str(row["name"]), str(row["type"])))
    return tables


def ledger(engine: Engine) -> list[tuple[int, str]]:
    rows = engine.select(f"SELECT version, name FROM {engine.database}.{LEDGER} ORDER BY version, name")
    return [(int(row["version"]), str(row["name"])) for row in rows]


def create_v1(engine: Engine) -> None:
    """The database as the first release made it: its DDL, and no ledger (that came later)."""
    engine.execute(f"CREATE DATABASE IF NOT EXISTS {engine.database}")
    for statement in statements_to_run(load_migrations()[0], engine.database, {}):
        engine.execute(statement)
    assert [name for name, _ in schema(engine)["scored_posts"]] == list(V1_COLUMNS)


def v1_row(post: Any) -> tuple[Any, ...]:
    full = dict(zip(COLUMNS, scored_post_row(post), strict=True))
    return tuple(full[column] for column in V1_COLUMNS)


def test_a_v1_database_with_rows_is_upgraded_and_keeps_every_row(engine: Engine, clickhouse_url: str) -> None:
    create_v1(engine)
    minute = now_minute() - timedelta(minutes=5)
    old = [scored(f"v1-{i}", "negative" if i % 2 else "positive", at=minute + timedelta(seconds=i)) for i in range(30)]
    engine.insert("scored_posts", V1_COLUMNS, [v1_row(post) for post in old])

    applied = migrate(engine)

    assert [done.version for done in applied] == [m.version for m in load_migrations()]
    assert [name for name, _ in schema(engine)["scored_posts"]] == list(COLUMNS)
    rows = engine.select(f"SELECT post_id, sentiment, is_duplicate, terms FROM {engine.database}.scored_posts")
    assert sorted(row["post_id"] for row in rows) == sorted(post.post.id for post in old)
    assert all(int(row["is_duplicate"]) == 0 and list(row["terms"]) == [] for row in rows)

    new = [scored(f"v2-{i}", "negative", at=minute + timedelta(seconds=40 + i), terms=("停电",)) for i in range(10)]
    with ClickHouseSink(engine=engine) as sink:
        sink.add(new)
        sink.flush()
    history = ClickHouseHistory(engine=engine)
    assert history.total_posts() == 40
    counts = history.subject_sentiment_counts()
    assert counts == {("云帆", "negative"): 25, ("云帆", "positive"): 15}  # the v1 rows still roll up
    assert history.hot_words("云帆", minute) == [("停电", 10)]  # the view 0002 added sees new rows
    assert {row["post_id"] for row in history.posts(minute, limit=100)} == {p.post.id for p in old + new}


def test_upgraded_and_fresh_databases_have_the_same_schema(engine: Engine, clickhouse_url: str) -> None:
    create_v1(engine)
    migrate(engine)
    fresh = open_engine(clickhouse_url.replace(engine.database, engine.database + "_fresh"))
    try:
        migrate(fresh)
        assert schema(fresh) == schema(engine)
        assert ledger(fresh) == ledger(engine)
    finally:
        fresh.execute(f"DROP DATABASE IF EXISTS {fresh.database}")
        fresh.close()


def test_migrating_twice_applies_nothing_the_second_time(engine: Engine) -> None:
    first = migrate(engine)
    assert [done.version for done in first] == [m.version for m in load_migrations()]
    assert migrate(engine) == []
    assert ledger(engine) == [(m.version, m.name) for m in load_migrations()]


def test_concurrent_migrations_apply_each_migration_once(engine: Engine, clickhouse_url: str) -> None:
    workers = 6
    start = threading.Barrier(workers)
    results: list[list[Applied]] = []
    errors: list[BaseException] = []

    def run() -> None:
        own = open_engine(clickhouse_url)
        try:
            start.wait()
            results.append(migrate(own))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(done.version for result in results for done in result) == [m.version for m in load_migrations()]
    assert ledger(engine) == [(m.version, m.name) for m in load_migrations()]  # no duplicates


def test_a_changed_released_file_is_refused(engine: Engine, tmp_path: Path) -> None:
    migrate(engine)
    folder = tmp_path / "migrations"
    shutil.copytree(str(migrations_folder()), folder)
    first = sorted(folder.glob("0001_*.sql"))[0]
    first.write_text(first.read_text(encoding="utf-8") + "\n-- an edit after release\n", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"0001_.* was changed"):
        migrate(engine, migrations=load_migrations(folder))


def test_a_new_migration_is_applied_after_the_released_ones(engine: Engine, tmp_path: Path) -> None:
    migrate(engine)
    folder = tmp_path / "migrations"
    shutil.copytree(str(migrations_folder()), folder)
    version = len(load_migrations()) + 1
    (folder / f"{version:04d}_probe.sql").write_text(
        "ALTER TABLE {db}.scored_posts ADD COLUMN probe String;\n", encoding="utf-8"
    )
    applied = migrate(engine, migrations=load_migrations(folder))
    assert [(done.version, done.statements) for done in applied] == [(version, 1)]
    assert schema(engine)["scored_posts"][-1] == ("probe", "String")


def test_the_redis_lock_is_renewed_while_held_and_excludes_others(redis_url: str) -> None:
    database = f"yq_lock_{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    try:
        with redis_lock(redis_url, database, ttl_s=0.6):
            time.sleep(1.5)  # more than twice the lock's life: only renewal keeps it
            assert client.exists(lock_key(database))
            with (
                pytest.raises(MigrationError, match="held the migration lock"),
                redis_lock(redis_url, database, wait_s=0.3),
            ):
                pass
        assert not client.exists(lock_key(database))
    finally:
        client.delete(lock_key(database))
        client.close()


def test_yuqing_db_migrate_prints_what_it_applied(clickhouse_server_url: str, redis_url: str) -> None:
    database = f"yq_test_{uuid.uuid4().hex[:12]}"
    base = urlsplit(clickhouse_server_url)
    url = urlunsplit((base.scheme, base.netloc, f"/{database}", base.query, ""))
    env = {**os.environ, "YUQING_CLICKHOUSE_URL": url, "YUQING_REDIS_URL": redis_url}

    def yuqing(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pipeline", "db", "migrate", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    try:
        first = yuqing("--json")
        assert first.returncode == 0, first.stderr[-2000:]
        report = json.loads(first.stdout)
        assert report["database"] == database
        assert [done["version"] for done in report["applied"]] == [m.version for m in load_migrations()]
        again = yuqing()
        assert again.returncode == 0, again.stderr[-2000:]
        assert "nothing applied" in again.stdout
    finally:
        engine = open_engine(url)
        engine.execute(f"DROP DATABASE IF EXISTS {database}")
        engine.close()


def rollup_counts(engine: Engine, table: str, by_version: bool) -> dict[tuple[str, ...], int]:
    """Distinct posts per key of a rollup table (with the model version first when it has one)."""
    version = "model_version, " if by_version else ""
    key = "term" if table.startswith("hot_words") else "sentiment"
    rows = engine.select(
        f"SELECT {version}subject, {key} AS k, uniqExactMerge(posts) AS n FROM {engine.database}.{table}"
        f" GROUP BY {version}subject, k"
    )
    return {
        tuple(str(row[c]) for c in (["model_version"] if by_version else []) + ["subject", "k"]): int(row["n"])
        for row in rows
    }


def summed_over_versions(counts: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """Per-version counts with the version left out; each post here has one version, so they add up."""
    total: dict[tuple[str, ...], int] = {}
    for key, n in counts.items():
        total[key[1:]] = total.get(key[1:], 0) + n
    return total


def test_a_0002_database_with_rows_gets_model_version_keys_and_keeps_every_row_and_count(engine: Engine) -> None:
    """A database at 0002 holds posts of two model versions (a roll-out), replays and flagged posts; 0003
    keeps every row and every count, now split by version, and resuming it changes nothing."""
    shipped = load_migrations()
    migrate(engine, migrations=shipped[:2])
    minute = now_minute() - timedelta(minutes=30)
    posts = [
        scored(
            f"p-{i}",
            ("negative", "neutral", "positive")[i % 3],
            ("云帆",) if i % 2 else ("云帆", "星河"),
            at=minute + timedelta(seconds=7 * i),
            terms=("停电", "涨价")[: 1 + i % 2],
            duplicate=i % 5 == 0,
            bot=i % 7 == 0,
        )
        for i in range(120)
    ]
    rows = [scored_post_row(post) for post in posts]
    version_at = COLUMNS.index("model_version")
    rows = [(*row[:version_at], "old" if i < 70 else "new", *row[version_at + 1 :]) for i, row in enumerate(rows)]
    engine.insert("scored_posts", COLUMNS, rows + rows[:25])  # a replay: 25 rows twice
    tables = ("minute_rollup", "minute_rollup_deduplicated", "hot_words")
    before = {table: rollup_counts(engine, table, by_version=False) for table in tables}
    assert sum(before["minute_rollup"].values()) == 120 + 60  # half the posts have two subjects

    applied = migrate(engine)

    assert [done.version for done in applied] == [3]
    keys = engine.select(
        "SELECT name, sorting_key FROM system.tables WHERE database = {db:String}", {"db": engine.database}
    )
    sorting = {str(row["name"]): str(row["sorting_key"]) for row in keys}
    assert sorting["scored_posts"] == "minute, model_version, post_id"
    assert sorting["minute_rollup"].startswith("minute, model_version")
    assert "model_version" in sorting["hot_words"]
    stored = engine.select(
        f"SELECT model_version, uniqExact(post_id) AS n FROM {engine.database}.scored_posts GROUP BY model_version"
    )
    assert {str(row["model_version"]): int(row["n"]) for row in stored} == {"old": 70, "new": 50}
    kept = engine.select(f"SELECT uniqExact(post_id) AS n FROM {engine.database}.scored_posts_v2")
    assert int(kept[0]["n"]) == 120  # the table as it was stays, for a later release to drop
    after = {table: rollup_counts(engine, table, by_version=True) for table in tables}
    for table in tables:
        assert summed_over_versions(after[table]) == before[table], table
    assert {key[0] for key in after["minute_rollup"]} == {"old", "new"}

    # Cut off before its ledger row: running the statements again is harmless.
    for statement in statements_to_run(shipped[2], engine.database, schema_columns(engine)):
        engine.execute(statement)
    assert {table: rollup_counts(engine, table, by_version=True) for table in tables} == after
    history = ClickHouseHistory(engine=engine)
    assert history.total_posts(model_version="old") == 70
    assert history.total_posts(model_version="new") == 50
    assert sum(history.subject_sentiment_counts(model_version="old").values()) == after_total(after, "old")
    # An erasure reaches the copy the upgrade kept too.
    history.erase_author("a-p-3")
    for table in ("scored_posts", "scored_posts_v2"):
        left = engine.select(f"SELECT count() AS n FROM {engine.database}.{table} WHERE author_id = 'a-p-3'")
        assert int(left[0]["n"]) == 0, table


def schema_columns(engine: Engine) -> dict[str, set[str]]:
    return {table: {name for name, _ in columns} for table, columns in schema(engine).items()}


def after_total(after: dict[str, dict[tuple[str, ...], int]], version: str) -> int:
    return sum(n for key, n in after["minute_rollup"].items() if key[0] == version)
