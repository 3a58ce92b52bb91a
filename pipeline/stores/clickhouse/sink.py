"""ClickHouse history store: scored posts and their minute rollup, written and read back.

Writes are idempotent by post id through the table design (``schemas/clickhouse/migrations/``):
``scored_posts`` is a ReplacingMergeTree and ``minute_rollup`` keeps sets of post ids, so
flushing posts again after a crash changes no count. Reads count distinct post ids, which is
exact whether or not ClickHouse has merged the replayed rows yet.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

from pipeline.stores.clickhouse.engines import (
    ClickHouseError,
    Engine,
    Param,
    is_data_error,
    open_engine,
    quote,
)
from pipeline.stores.clickhouse.migrations import migrate
from pipeline.stores.clickhouse.retention import apply_retention
from pipeline.stores.sink import SinkError, SinkRefused, minute_of
from schemas.records import Aggregate, ScoredPost

__all__ = ["COLUMNS", "ClickHouseHistory", "ClickHouseSink", "scored_post_row"]

COLUMNS: tuple[str, ...] = (
    "post_id", "platform", "author_id", "text", "text_truncated", "event_time", "minute",
    "lang", "url", "parent_id", "parent_kind", "likes", "reposts", "comments", "hashtags",
    "subjects", "monitored", "detected_lang", "terms", "cluster_id", "is_duplicate", "suspected_bot",
    "noise_reasons", "sentiment", "p_negative", "p_neutral", "p_positive", "model_id",
    "model_version", "scored_at", "processing_ms",
)  # fmt: skip
POST_ID, MINUTE = COLUMNS.index("post_id"), COLUMNS.index("minute")

_UINT32_MAX = 2**32 - 1


def _seconds(moment: datetime) -> datetime:
    # DateTime holds whole seconds; drop the rest so both engines store the same value.
    return moment.astimezone(UTC).replace(microsecond=0)


def scored_post_row(scored: ScoredPost) -> tuple[Any, ...]:
    """One ``scored_posts`` row, its values in ``COLUMNS`` order; missing optionals become ''."""
    post = scored.post
    event_time = _seconds(post.event_time)
    engagement = post.engagement
    return (
        post.id,
        post.platform,
        post.author_id,
        post.text,
        int(post.text_truncated),
        event_time,
        minute_of(event_time),
        post.lang or "",
        post.url or "",
        post.parent_id or "",
        post.parent_kind or "",
        # Feeds sometimes report absurd counts; clamp rather than fail the insert.
        min(engagement.likes, _UINT32_MAX),
        min(engagement.reposts, _UINT32_MAX),
        min(engagement.comments, _UINT32_MAX),
        list(post.hashtags),
        list(scored.subjects),
        int(scored.monitored),
        scored.lang,
        list(scored.terms),
        scored.cluster_id,
        int(scored.duplicate),
        int(scored.suspected_bot),
        list(scored.noise_reasons),
        scored.sentiment,
        scored.probabilities.negative,
        scored.probabilities.neutral,
        scored.probabilities.positive,
        scored.model_id,
        scored.model_version,
        _seconds(scored.scored_at),
        scored.processing_ms,
    )


class _OnEngine:
    """Holds an engine: one it opened from a URL (and closes), or one it was given (and leaves open).

    Before its first use it migrates the schema; ``redis_url`` is where a server's migration lock
    lives (default: the settings' Redis)."""

    def __init__(self, url: str | None = None, *, engine: Engine | None = None, redis_url: str | None = None) -> None:
        self._engine, self._owns_engine = _engine_for(url, engine)
        self._redis_url = redis_url
        self._schema_ready = False

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_engine:
            self._engine.close()


class ClickHouseSink(_OnEngine):
    """The history sink: buffers scored posts and writes them to ``scored_posts`` in one insert.

    The schema is migrated on the first flush, not at construction, so a worker can start
    while ClickHouse is still coming up; a failed flush keeps its buffer for the retry.
    Closing drops unflushed rows.
    """

    name = "clickhouse"

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        retention_days: int | None = None,
        redis_url: str | None = None,
    ) -> None:
        super().__init__(url, engine=engine, redis_url=redis_url)
        self._rows: list[tuple[Any, ...]] = []
        self._retention_days = retention_days  # of personal data; None leaves the table's as it is

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return len(self._rows)

    def add(self, posts: Sequence[ScoredPost]) -> None:
        try:
            rows = [scored_post_row(post) for post in posts]
        except (OverflowError, ValueError, TypeError) as exc:
            raise SinkRefused(f"clickhouse cannot hold a post of this batch: {exc}") from exc
        self._rows.extend(rows)

    def prepare(self) -> None:
        try:
            self._prepare()
        except Exception as exc:
            raise SinkError(f"clickhouse is not ready: {exc}") from exc

    def _prepare(self) -> None:
        if not self._schema_ready:
            migrate(self._engine, redis_url=self._redis_url)
            if self._retention_days is not None:
                apply_retention(self._engine, self._retention_days)
            self._schema_ready = True

    def flush(self) -> None:
        if not self._rows:
            return
        try:
            self._prepare()
            seen = self._stored_ids(self._rows)
            fresh = []
            for row in self._rows:  # the first of a post in this batch too, as the Redis script counts it
                if row[POST_ID] not in seen:
                    seen.add(row[POST_ID])
                    fresh.append(row)
            if fresh:
                self._engine.insert("scored_posts", COLUMNS, fresh)
        except Exception as exc:  # whatever the engine raised, the buffer survives it for the retry
            error = SinkRefused if is_data_error(exc) else SinkError
            raise error(f"clickhouse flush of {len(self._rows)} rows failed: {exc}") from exc
        self._rows = []

    def discard(self) -> None:
        self._rows = []

    def _stored_ids(self, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        """Which of these posts a flush already wrote. The first verdict on a post stays, as in Redis (its
        seen marker): a replay re-scored by another worker may judge its noise differently, and the
        deduplicated rollups, fed at insert, would count both. The minutes keep the read on the key."""
        minutes = ", ".join(sorted({f"toDateTime('{row[MINUTE]:%Y-%m-%d %H:%M:%S}', 'UTC')" for row in rows}))
        ids = ", ".join(sorted({quote(row[POST_ID]) for row in rows}))
        table = f"{self._engine.database}.scored_posts"
        sql = f"SELECT DISTINCT post_id FROM {table} WHERE minute IN ({minutes}) AND post_id IN ({ids})"
        return {str(row["post_id"]) for row in self._engine.select(sql)}


class ClickHouseHistory(_OnEngine):
    """The read side of the history store, on the same engine kinds as the sink."""

    def post_ids_of_author(self, author_id: str) -> set[str]:
        rows = self._select(
            "SELECT DISTINCT post_id FROM {db}.scored_posts WHERE author_id = {a:String}", {"a": author_id}
        )
        return {str(row["post_id"]) for row in rows}

    def erase_author(self, author_id: str, timeout_s: float = 60.0) -> None:
        """Delete the author's posts (text included); the minute rollups keep only counts and stay.

        A delete is a ClickHouse mutation, applied in the background: wait until none of the rows is left."""
        self._engine.execute(
            f"ALTER TABLE {self._engine.database}.scored_posts DELETE WHERE author_id = {quote(author_id)}"
        )
        deadline = time.monotonic() + timeout_s
        while self.post_ids_of_author(author_id):
            if time.monotonic() > deadline:
                raise ClickHouseError(f"the delete of author {author_id!r} is still running after {timeout_s:.0f}s")
            time.sleep(0.2)

    def total_posts(self) -> int:
        """Distinct post ids ever scored."""
        rows = self._select("SELECT uniqExact(post_id) AS n FROM {db}.scored_posts")
        return int(rows[0]["n"])

    def minute_series(
        self,
        since: datetime,
        until: datetime | None = None,
        subject: str | None = None,
        *,
        deduplicated: bool = False,
    ) -> list[Aggregate]:
        """Posts per (minute, subject, platform, sentiment) with ``since <= minute < until``.

        Naive datetimes are taken as UTC. Ordered by minute, subject, platform, sentiment.
        ``deduplicated`` counts each near-duplicate cluster once and leaves suspected bots out.
        """
        where, params = _minute_filter(since, until, subject)
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

    def subject_sentiment_counts(self, *, deduplicated: bool = False) -> dict[tuple[str, str], int]:
        """Distinct posts per (subject, sentiment) over all time, merged from the rollup."""
        rows = self._select(
            "SELECT subject, sentiment, uniqExactMerge(posts) AS n"
            f" FROM {{db}}.{_rollup(deduplicated)} GROUP BY subject, sentiment"
        )
        return {(row["subject"], row["sentiment"]): int(row["n"]) for row in rows}

    def hot_words(
        self, subject: str | None, since: datetime, until: datetime | None = None, n: int = 20
    ) -> list[tuple[str, int]]:
        """The ``n`` terms used by most (deduplicated) posts about ``subject`` (None: any) in the minutes.

        Merging the per-subject sets of post ids counts a post with several subjects once.
        """
        where, params = _minute_filter(since, until, subject)
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
    ) -> list[dict[str, Any]]:
        """Scored posts behind a number: newest first, one row per post id, with noise flags."""
        where = ["minute >= toDateTime({since:UInt32})"]
        params: dict[str, Param] = {"since": _epoch(since), "limit": max(limit, 0), "offset": max(offset, 0)}
        if until is not None:
            where.append("minute < toDateTime({until:UInt32})")
            params["until"] = _epoch(until)
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

    def _select(self, sql: str, params: dict[str, Param] | None = None) -> list[dict[str, Any]]:
        # An empty store reads as empty, not as "table does not exist".
        if not self._schema_ready:
            migrate(self._engine, redis_url=self._redis_url)
            self._schema_ready = True
        return self._engine.select(sql.replace("{db}", self._engine.database), params)


def _engine_for(url: str | None, engine: Engine | None) -> tuple[Engine, bool]:
    """The engine to use and whether its owner must close it."""
    if engine is not None and url is None:
        return engine, False
    if url is not None and engine is None:
        return open_engine(url), True
    raise ValueError("give exactly one of url or engine")


def _rollup(deduplicated: bool) -> str:
    return "minute_rollup_deduplicated" if deduplicated else "minute_rollup"


def _minute_filter(since: datetime, until: datetime | None, subject: str | None) -> tuple[list[str], dict[str, Param]]:
    """WHERE conditions (ANDed) and their parameters for a minute range and an optional subject."""
    where = ["minute >= toDateTime({since:UInt32})"]
    params: dict[str, Param] = {"since": _epoch(since)}
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
    return min(max(int(aware.timestamp()), 0), _UINT32_MAX)
