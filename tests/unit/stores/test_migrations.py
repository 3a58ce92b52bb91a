"""The pure planning of ClickHouse migrations: file names, statements, the plan against a ledger."""

from __future__ import annotations

import logging

import pytest

from pipeline.stores.clickhouse.migrations import (
    LedgerRow,
    Migration,
    MigrationError,
    load_migrations,
    parse_migrations,
    plan,
    split_statements,
    statements_to_run,
)
from pipeline.stores.clickhouse.sink import COLUMNS

ONE = "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = MergeTree() ORDER BY a;\n"
TWO = (
    "-- two columns; one statement each\n"
    "ALTER TABLE {db}.t ADD COLUMN b String AFTER a;\n"
    "ALTER TABLE {db}.t ADD COLUMN c Enum8('x' = 1, 'y' = 2) AFTER b;\n"
    "CREATE TABLE IF NOT EXISTS {db}.u (a UInt8) ENGINE = MergeTree() ORDER BY a\n"
)


def migrations() -> list[Migration]:
    return parse_migrations([("0002_more.sql", TWO), ("0001_first.sql", ONE)])


def row(migration: Migration, checksum: str | None = None) -> LedgerRow:
    return LedgerRow(migration.version, migration.name, checksum or migration.checksum)


def test_files_are_ordered_by_version() -> None:
    first, second = migrations()
    assert (first.version, first.name, second.version, second.name) == (1, "first", 2, "more")


@pytest.mark.parametrize(
    "files",
    [
        [("0001_a.sql", ONE), ("0003_c.sql", ONE)],  # a gap
        [("0001_a.sql", ONE), ("0001_b.sql", ONE)],  # a repeat
        [("0002_a.sql", ONE)],  # not starting at 1
        [("1_a.sql", ONE)],  # not four digits
        [("0001_Bad-Name.sql", ONE)],
        [("0001_a.sql", "ALTER TABLE {db}.t ADD COLUMN b String, ADD COLUMN c String")],  # two columns at once
        [("0001_a.sql", "ALTER TABLE other.t ADD COLUMN b String")],  # not in {db}
    ],
)
def test_malformed_sets_of_files_are_refused(files: list[tuple[str, str]]) -> None:
    with pytest.raises(MigrationError):
        parse_migrations(files)


def test_statements_drop_comments_and_split_at_semicolons() -> None:
    statements = split_statements(migrations()[1])
    assert len(statements) == 3
    assert statements[0] == "ALTER TABLE {db}.t ADD COLUMN b String AFTER a"
    assert all(not s.startswith("--") and not s.endswith(";") for s in statements)


def test_a_fresh_database_runs_everything_and_an_up_to_date_one_nothing() -> None:
    known = migrations()
    assert plan(known, []) == known
    assert plan(known, [row(known[0])]) == [known[1]]
    assert plan(known, [row(m) for m in known]) == []


def test_a_changed_released_file_is_refused() -> None:
    known = migrations()
    with pytest.raises(MigrationError, match="0001_first was changed"):
        plan(known, [row(known[0], checksum="0" * 64)])


def test_the_checksum_is_of_the_file_as_shipped() -> None:
    first = migrations()[0]
    assert first.checksum == Migration(1, "first", ONE).checksum
    assert first.checksum != Migration(1, "first", ONE + " ").checksum


def test_versions_from_a_newer_release_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    known = migrations()
    with caplog.at_level(logging.WARNING):
        assert plan(known, [row(m) for m in known] + [LedgerRow(3, "future", "f" * 64)]) == []
    assert "[3]" in caplog.text


def test_a_column_already_there_is_not_added_again() -> None:
    second = migrations()[1]
    fresh = statements_to_run(second, "hist", {"t": {"a"}})
    assert len(fresh) == 3 and fresh[0] == "ALTER TABLE hist.t ADD COLUMN b String AFTER a"
    resumed = statements_to_run(second, "hist", {"t": {"a", "b"}})
    assert [s.split(" ADD COLUMN ")[-1].split()[0] for s in resumed if "ADD COLUMN" in s] == ["c"]
    assert len(statements_to_run(second, "hist", {"t": {"a", "b", "c"}})) == 1  # only the CREATE … IF NOT EXISTS


def test_database_names_are_checked() -> None:
    with pytest.raises(ValueError):
        statements_to_run(migrations()[0], "x; DROP DATABASE y", {})


def test_shipped_migrations_reach_the_sink_columns_in_order() -> None:
    """Replaying the shipped ADD COLUMN … AFTER statements on the v1 column list gives the sink's columns."""
    shipped = load_migrations()
    assert [m.version for m in shipped] == list(range(1, len(shipped) + 1))
    first = split_statements(shipped[0])[0]
    assert first.startswith("CREATE TABLE IF NOT EXISTS {db}.scored_posts")
    body = first[first.index("(") + 1 : first.index("ENGINE")]
    columns = [line.split()[0] for line in body.splitlines() if line.strip() and line.strip() != ")"]
    for migration in shipped[1:]:
        for statement in split_statements(migration):
            words = statement.split()
            if words[:4] == ["ALTER", "TABLE", "{db}.scored_posts", "ADD"]:
                after = words[words.index("AFTER") + 1]
                columns.insert(columns.index(after) + 1, words[5])
    assert tuple(columns) == COLUMNS


def test_shipped_migrations_run_on_clickhouse_18_16() -> None:
    code = "\n".join("\n".join(split_statements(m)) for m in load_migrations())
    for unsupported in ("TTL", "DateTime64", "LowCardinality", "Map(", "SimpleAggregateFunction"):
        assert unsupported not in code
    assert "ADD COLUMN IF NOT EXISTS" not in code.upper()


def test_a_rename_already_done_is_not_run_again() -> None:
    renames = parse_migrations(
        [("0001_first.sql", ONE), ("0002_swap.sql", "RENAME TABLE {db}.t TO {db}.t_old;\n" + ONE)]
    )[1]
    fresh = statements_to_run(renames, "hist", {"t": {"a"}})
    assert fresh[0] == "RENAME TABLE hist.t TO hist.t_old" and len(fresh) == 2
    resumed = statements_to_run(renames, "hist", {"t": {"a"}, "t_old": {"a"}})
    assert [s.split()[0] for s in resumed] == ["CREATE"]


def test_a_rename_of_several_tables_in_one_statement_is_refused() -> None:
    with pytest.raises(MigrationError, match="one table per RENAME"):
        parse_migrations([("0001_first.sql", ONE + ";RENAME TABLE {db}.t TO {db}.u, {db}.v TO {db}.w")])


def test_the_newest_scored_posts_table_has_the_sink_columns_and_the_model_version_in_its_key() -> None:
    creates = [
        statement
        for migration in load_migrations()
        for statement in split_statements(migration)
        if statement.startswith("CREATE TABLE IF NOT EXISTS {db}.scored_posts\n")
    ]
    newest = creates[-1]
    body = newest[newest.index("(") + 1 : newest.index("ENGINE")]
    columns = [line.split()[0] for line in body.splitlines() if line.strip() and line.strip() != ")"]
    assert tuple(columns) == COLUMNS
    assert "ORDER BY (minute, model_version, post_id)" in newest
