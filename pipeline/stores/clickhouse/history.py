"""ClickHouse history, the read side: counts, series, hot words and posts, of one model version.

Model versions
    Each model version keeps its own verdict on a post (``yuqing rescore`` writes another version's
    beside the serving one's). Reads take ``model_version``; left out, they read the serving version:
    the one the reader was built with (``serving_version=``), else the version that scored the newest
    stored minute, earliest (live workers score a minute as it happens; a re-score of the same minute
    comes later). That is looked up again at most every ``SERVING_TTL_S`` seconds, so a model roll-out
    is followed without a restart.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pipeline.stores.clickhouse.engines import ClickHouseError, Engine, Param, quote
from pipeline.stores.clickhouse.migrations import migrate
from pipeline.stores.clickhouse.sink import COLUMNS, UINT32_MAX, _OnEngine
from schemas.records import Aggregate

__all__ = ["ClickHouseHistory"]

SERVING_TTL_S = 60.0


class ClickHouseHistory(_OnEngine):
    """The read side of the history store, on the same engine kinds as the sink.

    Counts and posts are of one model version: ``model_version`` where a method takes it, else the
    serving version (see the module's notes)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        redis_url: str | None = None,
        serving_version: str | None = None,
    ) -> None:
        super().__init__(url, engine=engine, redis_url=redis_url)
        self._serving_fixed = serving_version
        self._serving: tuple[float, str] | None = None  # (looked up at, version)

    def serving_version(self) -> str:
        """The model version default reads use ('' while nothing is stored)."""
        if self._serving_fixed is not None:
            return self._serving_fixed
        now = time.monotonic()
        if self._serving is None or now - self._serving[0] > SERVING_TTL_S:
            rows = self._select(
                "SELECT model_version FROM {db}.scored_posts"
                " WHERE minute = (SELECT max(minute) FROM {db}.scored_posts)"
                " ORDER BY scored_at, model_version LIMIT 1"
            )
            version = str(rows[0]["model_version"]) if rows else ""
            if not version:
                return ""  # nothing stored yet: ask again next time
            self._serving = (now, version)
        return self._serving[1]

    def model_versions(self) -> dict[str, int]:
        """Distinct posts stored per model version."""
        rows = self._select(
            "SELECT model_version, uniqExact(post_id) AS n FROM {db}.scored_posts GROUP BY model_version"
        )
        return {str(row["model_version"]): int(row["n"]) for row in rows}

    def post_ids_of_author(self, author_id: str) -> set[str]:
        rows = self._select(
            "SELECT DISTINCT post_id FROM {db}.scored_posts WHERE author_id = {a:String}", {"a": author_id}
        )
        return {str(row["post_id"]) for row in rows}

    def erase_author(self, author_id: str, timeout_s: float = 60.0) -> None:
        """Delete the author's posts (text included), also from the table kept by the model-version
        upgrade; the minute rollups keep only counts and stay.

        A delete is a ClickHouse mutation, applied in the background: wait until none of the rows is left."""
        for table in self._post_tables():
            self._engine.execute(
                f"ALTER TABLE {self._engine.database}.{table} DELETE WHERE author_id = {quote(author_id)}"
            )
        deadline = time.monotonic() + timeout_s
        while any(self._author_rows(table, author_id) for table in self._post_tables()):
            if time.monotonic() > deadline:
                raise ClickHouseError(f"the delete of author {author_id!r} is still running after {timeout_s:.0f}s")
            time.sleep(0.2)

    def _post_tables(self) -> list[str]:
        rows = self._select(
            "SELECT name FROM system.tables"
            " WHERE database = {db:String} AND name IN ('scored_posts', 'scored_posts_v2')",
            {"db": self._engine.database},
        )
        return sorted(str(row["name"]) for row in rows)

    def _author_rows(self, table: str, author_id: str) -> int:
        rows = self._select(f"SELECT count() AS n FROM {{db}}.{table} WHERE author_id = {{a:String}}", {"a": author_id})
        return int(rows[0]["n"])

    def total_posts(self, model_version: str | None = None) -> int:
        """Distinct post ids scored by the model version (None: the serving one)."""
        rows = self._select(
            "SELECT uniqExact(post_id) AS n FROM {db}.scored_posts WHERE model_version = {v:String}",
            {"v": self._version(model_version)},
        )
        return int(rows[0]["n"])

    def minute_series(
        self,
        since: datetime,
        until: datetime | None = None,
        subject: str | None = None,
        *,
        deduplicated: bool = False,
        model_version: str | None = None,
    ) -> list[Aggregate]:
        """Posts per (minute, subject, platform, sentiment) with ``since <= minute < until``.

        Naive datetimes are taken as UTC. Ordered by minute, subject, platform, sentiment.
        ``deduplicated`` counts each near-duplicate cluster once and leaves suspected bots out.
        """
        where, params = _minute_filter(since, until, subject, self._version(model_version))
        rows = self._select(
            "SELECT toUnixTimestamp(minute) AS minute_ts, subject, platform, sentiment,"
            f" uniqExactMerge(posts) AS n FROM {{db}}.{_rollup(deduplicated)}"
            f" WHERE {' AND '.join(where)}"
            " GROUP BY minute, subject, platform, sentiment"
            " ORDER BY minute, subject, platform, sentiment",
            params,
        )
        return [
            Aggregate(
                minute=datetime.fromtimestamp(int(row["minute_ts"]), UTC),
                subject=row["subject"],
                platform=row["platform"],
                sentiment=row["sentiment"],
                count=int(row["n"]),
            )
            for row in rows
        ]

    def subject_sentiment_counts(
        self, *, deduplicated: bool = False, model_version: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Distinct posts per (subject, sentiment) over all time, merged from the rollup."""
        rows = self._select(
            "SELECT subject, sentiment, uniqExactMerge(posts) AS n"
            f" FROM {{db}}.{_rollup(deduplicated)} WHERE model_version = {{v:String}} GROUP BY subject, sentiment",
            {"v": self._version(model_version)},
        )
        return {(row["subject"], row["sentiment"]): int(row["n"]) for row in rows}

    def hot_words(
        self,
        subject: str | None,
        since: datetime,
        until: datetime | None = None,
        n: int = 20,
        *,
        model_version: str | None = None,
    ) -> list[tuple[str, int]]:
        """The ``n`` terms used by most (deduplicated) posts about ``subject`` (None: any) in the minutes.

        Merging the per-subject sets of post ids counts a post with several subjects once.
        """
        where, params = _minute_filter(since, until, subject, self._version(model_version))
        rows = self._select(
            "SELECT term, uniqExactMerge(posts) AS n FROM {db}.hot_words"
            f" WHERE {' AND '.join(where)} GROUP BY term ORDER BY n DESC, term LIMIT {{n:UInt32}}",
            {**params, "n": max(n, 0)},
        )
        return [(row["term"], int(row["n"])) for row in rows]

    def posts(
        self,
        since: datetime,
        until: datetime | None = None,
        subject: str | None = None,
        *,
        sentiment: str | None = None,
        platform: str | None = None,
        deduplicated: bool = False,
        limit: int = 50,
        offset: int = 0,
        model_version: str | None = None,
    ) -> list[dict[str, Any]]:
        """Scored posts behind a number: newest first, one row per post id, with noise flags."""
        where, params = _minute_filter(since, until, None, self._version(model_version))
        params.update({"limit": max(limit, 0), "offset": max(offset, 0)})
        for column, value in (("sentiment", sentiment), ("platform", platform)):
            if value is not None:
                where.append(f"{column} = {{{column}:String}}")
                params[column] = value
        if subject is not None:
            where.append("has(subjects, {subject:String})")
            params["subject"] = subject
        if deduplicated:
            where.append("is_duplicate = 0 AND suspected_bot = 0")
        # LIMIT 1 BY post_id: a replayed post not yet merged away shows once. 18.16 has no OFFSET.
        rows = self._select(
            "SELECT post_id, platform, author_id, text, toUnixTimestamp(event_time) AS event_ts, subjects,"
            " sentiment, p_negative, p_neutral, p_positive, likes, reposts, comments, cluster_id,"
            " is_duplicate, suspected_bot, noise_reasons, detected_lang, url"
            f" FROM {{db}}.scored_posts WHERE {' AND '.join(where)}"
            " ORDER BY event_time DESC, post_id LIMIT 1 BY post_id LIMIT {offset:UInt32}, {limit:UInt32}",
            params,
        )
        for row in rows:
            row["event_time"] = datetime.fromtimestamp(int(row.pop("event_ts")), UTC).isoformat()
            row["is_duplicate"], row["suspected_bot"] = bool(int(row["is_duplicate"])), bool(int(row["suspected_bot"]))
        return rows

    def stored_post_count(self, since: datetime, until: datetime) -> int:
        """Distinct posts stored with ``since <= minute < until``, whatever the versions that scored them."""
        where, params = _minute_filter(since, until, None, None)
        rows = self._select(
            f"SELECT uniqExact(post_id) AS n FROM {{db}}.scored_posts WHERE {' AND '.join(where)}", params
        )
        return int(rows[0]["n"])

    def stored_posts(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Every stored post with ``since <= minute < until``, once each whatever the versions that scored
        it, in (minute, post id) order: the serving version's row where it has one, else the earliest
        scored. All columns (``COLUMNS``); ``event_time`` and ``scored_at`` as UTC datetimes."""
        serving = self.serving_version()
        where, params = _minute_filter(since, until, None, None)
        params["serving"] = serving
        columns = ", ".join(c for c in COLUMNS if c not in ("event_time", "minute", "scored_at"))
        rows = self._select(
            f"SELECT {columns}, toUnixTimestamp(event_time) AS event_ts, toUnixTimestamp(minute) AS minute_ts,"
            " toUnixTimestamp(scored_at) AS scored_ts"
            f" FROM {{db}}.scored_posts WHERE {' AND '.join(where)}"
            " ORDER BY minute, post_id, model_version != {serving:String}, scored_at LIMIT 1 BY minute, post_id",
            params,
        )
        for row in rows:
            for name, key in (("event_time", "event_ts"), ("minute", "minute_ts"), ("scored_at", "scored_ts")):
                row[name] = datetime.fromtimestamp(int(row.pop(key)), UTC)
        return rows

    def _version(self, model_version: str | None) -> str:
        return self.serving_version() if model_version is None else model_version

    def _select(self, sql: str, params: dict[str, Param] | None = None) -> list[dict[str, Any]]:
        # An empty store reads as empty, not as "table does not exist".
        if not self._schema_ready:
            migrate(self._engine, redis_url=self._redis_url)
            self._schema_ready = True
        return self._engine.select(sql.replace("{db}", self._engine.database), params)


def _rollup(deduplicated: bool) -> str:
    return "minute_rollup_deduplicated" if deduplicated else "minute_rollup"


def _minute_filter(
    since: datetime, until: datetime | None, subject: str | None, model_version: str | None
) -> tuple[list[str], dict[str, Param]]:
    """WHERE conditions (ANDed) and their parameters for a minute range, an optional subject and an
    optional model version."""
    where = ["minute >= toDateTime({since:UInt32})"]
    params: dict[str, Param] = {"since": _epoch(since)}
    if model_version is not None:
        where.append("model_version = {model_version:String}")
        params["model_version"] = model_version
    if until is not None:
        where.append("minute < toDateTime({until:UInt32})")
        params["until"] = _epoch(until)
    if subject is not None:
        where.append("subject = {subject:String}")
        params["subject"] = subject
    return where, params


def _epoch(moment: datetime) -> int:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    # DateTime is UInt32 seconds: clamp, so a far past or future bound still means "all".
    return min(max(int(aware.timestamp()), 0), UINT32_MAX)
