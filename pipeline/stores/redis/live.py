"""Redis, the live store: minute buckets with expiry, rolling windows, top subjects, hot words, pub/sub."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import cast

import orjson
import redis

from pipeline.domain.alerts.series import EventTimeGate
from pipeline.domain.hotwords import emerging_terms, top_terms
from pipeline.settings import Settings
from pipeline.stores.redis.keys import ALL_SUBJECTS, RedisKeys, bucket_field, minute_stamp, split_field
from pipeline.stores.sink import SinkError, SinkRefused, minute_of
from schemas.records import ScoredPost

# The flush script (its semantics are commented there) reads a JSON header and one JSON document
# per post, every value by name, so a new field means no renumbering on either side. The protocol
# is in schemas/redis.md; _flush_header and _post_document are its only writers.
_FLUSH_SCRIPT = resources.files("pipeline.stores.redis").joinpath("flush.lua").read_text(encoding="utf-8")
EVIDENCE_POSTS_PER_MINUTE = 10
EVIDENCE_TEXT_CHARS = 280


def engagement_of(scored: ScoredPost) -> int:
    """How much a post was engaged with: the ranking of evidence posts."""
    engagement = scored.post.engagement
    return engagement.likes + engagement.reposts + engagement.comments


def evidence_member(scored: ScoredPost) -> str:
    """A negative post as alert evidence: a compact JSON member of the subject-minute's sorted set."""
    post = scored.post
    item = {
        # No author id: evidence travels on to alerts and webhooks, and needs none to show opinion.
        "post_id": post.id,
        "platform": post.platform,
        "text": post.text[:EVIDENCE_TEXT_CHARS],
        "event_time": post.event_time.isoformat(),
        "engagement": engagement_of(scored),
        "p_negative": round(scored.probabilities.negative, 3),
    }
    return json.dumps(item, ensure_ascii=False, sort_keys=True)


def compact_json(value: object) -> bytes:
    """A script argument: compact JSON in UTF-8 (no \\u escapes: fewer bytes for Chinese, and cjson
    copies it as is)."""
    return orjson.dumps(value)


# Replies that say Redis cannot run anything now (loading, busy with a script, out of memory, a replica):
# the flush is retried. Any other error reply comes from the script on this batch's data.
TRANSIENT_REPLIES = ("LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN")


def is_data_error(exc: redis.RedisError) -> bool:
    return isinstance(exc, redis.ResponseError) and not str(exc).startswith(TRANSIENT_REPLIES)


def connect(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(), decode_responses=True, socket_timeout=5, socket_connect_timeout=5
    )


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix:`` (the demo and tests start from nothing)."""
    deleted = 0
    batch: list[str] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


class RedisSink:
    """Counts each scored post once into its minute buckets and announces the change on pub/sub."""

    name = "redis"

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._client = client or connect(settings)
        self._keys = RedisKeys(settings.redis_prefix)
        self._marker_ttl = settings.dedup_marker_ttl_s
        self._retention = settings.live_retention_s
        self._script = self._client.register_script(_FLUSH_SCRIPT)
        self._gate = EventTimeGate(settings.detection_future_tolerance_s, settings.detection_max_lateness_s)
        self._buffer: list[ScoredPost] = []
        self.counted_last_flush = 0

    def add(self, posts: Sequence[ScoredPost]) -> None:
        self._buffer.extend(posts)

    def _flush_header(self) -> bytes:
        k = self._keys
        header = {
            "seen_prefix": k.seen_prefix,
            "minute_prefix": k.minute_prefix,
            "deduplicated_prefix": k.deduplicated_prefix,
            "top_prefix": k.top_prefix,
            "hot_prefix": k.hot_prefix,
            "negative_prefix": k.negative_posts_prefix,
            "dropped_key": k.detection_dropped,
            "watermark_key": k.watermark,
            "marker_ttl": self._marker_ttl,
            "keep_posts": EVIDENCE_POSTS_PER_MINUTE,
        }
        return compact_json(header)

    def _post_document(self, scored: ScoredPost) -> bytes:
        post = scored.post
        minute = minute_of(post.event_time)
        document = {
            "id": post.id,
            "stamp": minute_stamp(minute),
            "expire_at": int(minute.timestamp()) + self._retention,
            "event_time": int(post.event_time.timestamp()),
            "kept": scored.counts_deduplicated,
            # Judged against when the post was scored, not now, so a replay gives the same answer.
            "gate": self._gate.check(post.event_time, scored.scored_at),
            "subjects": [
                {"subject": subject, "field": bucket_field(subject, post.platform, scored.sentiment)}
                for subject in (ALL_SUBJECTS, *scored.subjects)
            ],
            "terms": list(scored.terms),
            "evidence": evidence_member(scored) if scored.sentiment == "negative" else None,
            "engagement": engagement_of(scored),
        }
        return compact_json(document)

    def _script_args(self) -> list[bytes]:
        return [self._flush_header(), *(self._post_document(scored) for scored in self._buffer)]

    def flush(self) -> None:
        if not self._buffer:
            return
        try:
            counted = int(self._script(args=self._script_args()))
            minutes = sorted({minute_of(p.post.event_time).isoformat() for p in self._buffer})
            self._client.publish(self._keys.live_channel, json.dumps({"counted": counted, "minutes": minutes}))
        except redis.RedisError as exc:
            error = SinkRefused if is_data_error(exc) else SinkError
            raise error(f"Redis flush of {len(self._buffer)} posts failed: {exc}") from exc
        self.counted_last_flush = counted
        self._buffer.clear()

    def prepare(self) -> None:
        """Nothing to prepare: Redis needs no schema."""

    def discard(self) -> None:
        self._buffer.clear()

    def close(self) -> None:
        self._client.close()


class RedisLive:
    """The read side: rolling-window totals, top subjects and hot words, summed from minute buckets."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._client = client or connect(settings)
        self._keys = RedisKeys(settings.redis_prefix)

    def forget_evidence(self, post_ids: set[str]) -> int:
        """Remove these posts from every subject-minute's evidence; the number of entries removed."""
        removed = 0
        for key in self._client.scan_iter(match=f"{self._keys.negative_posts_prefix}*", count=1000):
            members = cast(list[str], self._client.zrange(key, 0, -1))
            doomed = [m for m in members if json.loads(m).get("post_id") in post_ids]
            if doomed:
                removed += int(self._client.zrem(key, *doomed))
        return removed

    @staticmethod
    def window_minutes(minutes: int, now: datetime | None = None) -> list[datetime]:
        """The ``minutes`` minute starts ending with the current (partial) minute, newest first."""
        last = minute_of(now or datetime.now(UTC))
        return [last - timedelta(minutes=i) for i in range(minutes)]

    def window_counts(
        self, minutes: int, subject: str | None = None, now: datetime | None = None, *, deduplicated: bool = False
    ) -> Counter[tuple[str, str, str]]:
        """Posts per (subject, platform, sentiment) over the window; subject ``*`` is every post once.

        ``deduplicated`` counts each near-duplicate cluster once and leaves suspected bots out.
        """
        key = self._keys.deduplicated if deduplicated else self._keys.minute
        pipe = self._client.pipeline(transaction=False)
        for minute in self.window_minutes(minutes, now):
            pipe.hgetall(key(minute))
        counts: Counter[tuple[str, str, str]] = Counter()
        for bucket in pipe.execute():
            for field, value in bucket.items():
                split = split_field(field)
                if subject is None or split[0] == subject:
                    counts[split] += int(value)
        return counts

    def series(
        self, minutes: int, subject: str = ALL_SUBJECTS, now: datetime | None = None, *, deduplicated: bool = False
    ) -> list[tuple[datetime, Counter[tuple[str, str]]]]:
        """Per minute, oldest first (the last is the current, partial minute): posts of ``subject``
        per (platform, sentiment)."""
        key = self._keys.deduplicated if deduplicated else self._keys.minute
        window = list(reversed(self.window_minutes(minutes, now)))
        pipe = self._client.pipeline(transaction=False)
        for minute in window:
            pipe.hgetall(key(minute))
        result = []
        for minute, bucket in zip(window, pipe.execute(), strict=True):
            counts: Counter[tuple[str, str]] = Counter()
            for field, value in bucket.items():
                name, platform, sentiment = split_field(field)
                if name == subject:
                    counts[(platform, sentiment)] += int(value)
            result.append((minute, counts))
        return result

    def subject_minutes(
        self, minutes: Sequence[datetime], *, deduplicated: bool = True
    ) -> list[dict[str, Counter[str]]]:
        """Per minute given: each subject's posts per sentiment (``*`` included), in one round trip."""
        key = self._keys.deduplicated if deduplicated else self._keys.minute
        pipe = self._client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(key(minute))
        result = []
        for bucket in pipe.execute():
            per_subject: dict[str, Counter[str]] = {}
            for field, value in bucket.items():
                subject, _platform, sentiment = split_field(field)
                per_subject.setdefault(subject, Counter())[sentiment] += int(value)
            result.append(per_subject)
        return result

    def negative_posts(self, subject: str, minutes: Sequence[datetime], n: int = 5) -> list[dict[str, object]]:
        """The ``n`` most engaged deduplicated negative posts of ``subject`` in those minutes."""
        keys = [self._keys.negative_posts(minute, subject) for minute in minutes]
        if not keys:
            return []
        rows = cast(list[tuple[str, float]], self._client.zunion(keys, withscores=True))
        return [json.loads(member) for member, _score in rows[::-1][:n]]

    def watermark(self) -> datetime | None:
        """The newest event time counted so far (None before the first post)."""
        value = self._client.get(self._keys.watermark)
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    def total(self, minutes: int, now: datetime | None = None, *, deduplicated: bool = False) -> int:
        """Distinct posts counted in the window."""
        return sum(self.window_counts(minutes, ALL_SUBJECTS, now, deduplicated=deduplicated).values())

    def top_subjects(self, minutes: int, n: int = 10, now: datetime | None = None) -> list[tuple[str, int]]:
        keys = [self._keys.top(m) for m in self.window_minutes(minutes, now)]
        rows = cast(list[tuple[str, float]], self._client.zunion(keys, withscores=True))
        return [(subject, int(score)) for subject, score in rows[::-1][:n]]

    def hot_words(
        self, subject: str = ALL_SUBJECTS, minutes: int = 5, n: int = 20, now: datetime | None = None
    ) -> list[tuple[str, int]]:
        """The ``n`` terms most used by (deduplicated) posts about ``subject`` over the window."""
        keys = [self._keys.hot(m, subject) for m in self.window_minutes(minutes, now)]
        rows = cast(list[tuple[str, float]], self._client.zunion(keys, withscores=True))
        return top_terms({term: int(score) for term, score in rows}, n)

    def hot_word_minutes(
        self, subject: str, minutes: int, now: datetime | None = None, per_minute: int = 200
    ) -> list[dict[str, int]]:
        """Each minute's top ``per_minute`` terms of ``subject``, oldest first (the last is the current minute)."""
        pipe = self._client.pipeline(transaction=False)
        for minute in reversed(self.window_minutes(minutes, now)):
            pipe.zrevrange(self._keys.hot(minute, subject), 0, per_minute - 1, withscores=True)
        return [{term: int(score) for term, score in rows} for rows in pipe.execute()]

    def emerging_words(
        self,
        subject: str = ALL_SUBJECTS,
        baseline_minutes: int = 30,
        now: datetime | None = None,
        *,
        min_count: int = 5,
        min_z: float = 3.0,
    ) -> list[tuple[str, float]]:
        """Terms of the last two minutes whose rate jumps against the ``baseline_minutes`` before them."""
        series = self.hot_word_minutes(subject, baseline_minutes + 2, now)
        current: Counter[str] = Counter()
        for minute in series[-2:]:
            current.update(minute)
        return emerging_terms(current, series[:-2], min_count=min_count, min_z=min_z)

    def close(self) -> None:
        self._client.close()
