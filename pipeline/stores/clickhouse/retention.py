"""How long ``scored_posts`` (and ``scored_posts_v2``) keeps what identifies a person: a column TTL on
the text, the author id and the URL, counted from the post's event time. When it expires, ClickHouse blanks those
columns at its next merge and keeps the rest (sentiment, subjects, terms, counts), so history stays exact.

Column TTL needs ClickHouse 19.6 or newer; on an older server the retention is skipped with a
warning, and ``yuqing erase`` remains the way to remove someone's posts.
"""

from __future__ import annotations

import logging
import re

from pipeline.stores.clickhouse.engines import Engine

log = logging.getLogger(__name__)
PERSONAL_COLUMNS = ("author_id", "text", "url")  # all String
FIRST_WITH_COLUMN_TTL = (19, 6)


def supports_column_ttl(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= FIRST_WITH_COLUMN_TTL


def current_ttl_days(create_query: str, column: str) -> int | None:
    """The days of a column's TTL in a ``CREATE TABLE`` statement as the server shows it; None if none."""
    found = re.search(rf"`{column}` String TTL event_time \+ toIntervalDay\((\d+)\)", create_query)
    return int(found.group(1)) if found else None


def apply_retention(engine: Engine, days: int) -> None:
    """Make the personal columns expire ``days`` after the event (0: keep them); altered only on change,
    since a changed TTL rewrites the column in every part."""
    (version,) = (row["v"] for row in engine.select("SELECT version() AS v"))
    if not supports_column_ttl(str(version)):
        if days:
            log.warning("ClickHouse %s has no column TTL: personal data is kept until `yuqing erase`", version)
        return
    # scored_posts_v2 is the table the model-version upgrade (migration 0003) kept: its text ages out too.
    tables = engine.select(
        "SELECT name, create_table_query AS q FROM system.tables"
        " WHERE database = {db:String} AND name IN ('scored_posts', 'scored_posts_v2')",
        {"db": engine.database},
    )
    for table in tables:
        for column in PERSONAL_COLUMNS:
            if current_ttl_days(table["q"], column) == (days or None):
                continue
            change = f"String TTL event_time + INTERVAL {days} DAY" if days else "REMOVE TTL"
            engine.execute(f"ALTER TABLE {engine.database}.{table['name']} MODIFY COLUMN {column} {change}")
            log.info("%s.%s: %s", table["name"], column, f"kept {days} days" if days else "kept without limit")
