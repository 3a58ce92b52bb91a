"""ClickHouse history store: scored posts and their minute rollups, written and read back.

Writes are idempotent by (model version, post id) through the table design
(``schemas/clickhouse/migrations/``): ``scored_posts`` is a ReplacingMergeTree keyed by minute, model
version and post id, and the rollups keep sets of post ids per model version, so flushing posts again
after a crash changes no count. Reads count distinct post ids of one model version, which is exact
whether or not ClickHouse has merged the replayed rows yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

from pipeline.stores.clickhouse.engines import (
    Engine,
    is_data_error,
    open_engine,
    quote,
)
from pipeline.stores.clickhouse.migrations import migrate
from pipeline.stores.clickhouse.retention import apply_retention
from pipeline.stores.sink import SinkError, SinkRefused, minute_of
from schemas.records import ScoredPost

__all__ = ["COLUMNS", "ClickHouseSink", "scored_post_row"]

COLUMNS: tuple[str, ...] = (
    "post_id", "platform", "author_id", "text", "text_truncated", "event_time", "minute",
    "lang", "url", "parent_id", "parent_kind", "likes", "reposts", "comments", "hashtags",
    "subjects", "monitored", "detected_lang", "terms", "cluster_id", "is_duplicate", "suspected_bot",
    "noise_reasons", "sentiment", "p_negative", "p_neutral", "p_positive", "model_id",
    "model_version", "scored_at", "processing_ms",
)  # fmt: skip
POST_ID, MINUTE = COLUMNS.index("post_id"), COLUMNS.index("minute")
MODEL_VERSION = COLUMNS.index("model_version")
UINT32_MAX = 2**32 - 1  # ClickHouse UInt32 and DateTime


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
        min(engagement.likes, UINT32_MAX),
        min(engagement.reposts, UINT32_MAX),
        min(engagement.comments, UINT32_MAX),
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
        self.written = 0  # rows inserted so far, less those skipped as already stored
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
                key = (row[MODEL_VERSION], row[POST_ID])
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
            if fresh:
                self._engine.insert("scored_posts", COLUMNS, fresh)
                self.written += len(fresh)
        except Exception as exc:  # whatever the engine raised, the buffer survives it for the retry
            error = SinkRefused if is_data_error(exc) else SinkError
            raise error(f"clickhouse flush of {len(self._rows)} rows failed: {exc}") from exc
        self._rows = []

    def discard(self) -> None:
        self._rows = []

    def _stored_ids(self, rows: Sequence[tuple[Any, ...]]) -> set[tuple[str, str]]:
        """Which (model version, post id) pairs of these rows a flush already wrote. The first verdict of
        a model version on a post stays, as in Redis (its seen marker): a replay re-scored by another
        worker may judge its noise differently, and the deduplicated rollups, fed at insert, would count
        both. Another model version's verdict is its own. The minutes keep the read on the key."""
        minutes = ", ".join(sorted({f"toDateTime('{row[MINUTE]:%Y-%m-%d %H:%M:%S}', 'UTC')" for row in rows}))
        versions = ", ".join(sorted({quote(row[MODEL_VERSION]) for row in rows}))
        ids = ", ".join(sorted({quote(row[POST_ID]) for row in rows}))
        table = f"{self._engine.database}.scored_posts"
        sql = (
            f"SELECT DISTINCT model_version, post_id FROM {table}"
            f" WHERE minute IN ({minutes}) AND model_version IN ({versions}) AND post_id IN ({ids})"
        )
        return {(str(row["model_version"]), str(row["post_id"])) for row in self._engine.select(sql)}


def _engine_for(url: str | None, engine: Engine | None) -> tuple[Engine, bool]:
    """The engine to use and whether its owner must close it."""
    if engine is not None and url is None:
        return engine, False
    if url is not None and engine is None:
        return open_engine(url), True
    raise ValueError("give exactly one of url or engine")
