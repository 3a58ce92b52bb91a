"""Redis, the live store: minute buckets with expiry, rolling windows, top subjects, pub/sub."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import redis

from pipeline.settings import Settings
from pipeline.sinks.base import SinkError, minute_of
from pipeline.sinks.redis_keys import ALL_SUBJECTS, RedisKeys, bucket_field, split_field
from schemas.records import ScoredPost

# One atomic script per flush. A post id is counted only if its "seen" marker did not exist, and
# the marker is set in the same step as the counts, so a replayed batch never counts twice and a
# crash can never leave a batch half counted.
# ARGV: seen prefix, minute prefix, top prefix, marker ttl, then per post:
#   id, minute stamp, bucket expiry (epoch s), total field, n, then n (subject, field) pairs.
_COUNT_SCRIPT = """
local seen_prefix, min_prefix, top_prefix = ARGV[1], ARGV[2], ARGV[3]
local ttl = tonumber(ARGV[4])
local counted, i = 0, 5
while i <= #ARGV do
  local id, stamp, expire_at, total_field = ARGV[i], ARGV[i+1], tonumber(ARGV[i+2]), ARGV[i+3]
  local n = tonumber(ARGV[i+4])
  if redis.call('SET', seen_prefix .. id, '1', 'NX', 'EX', ttl) then
    local hkey, zkey = min_prefix .. stamp, top_prefix .. stamp
    redis.call('HINCRBY', hkey, total_field, 1)
    for j = 0, n - 1 do
      redis.call('HINCRBY', hkey, ARGV[i+6+2*j], 1)
      redis.call('ZINCRBY', zkey, 1, ARGV[i+5+2*j])
    end
    redis.call('EXPIREAT', hkey, expire_at)
    redis.call('EXPIREAT', zkey, expire_at)
    counted = counted + 1
  end
  i = i + 5 + 2 * n
end
return counted
"""


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
        self._script = self._client.register_script(_COUNT_SCRIPT)
        self._buffer: list[ScoredPost] = []
        self.counted_last_flush = 0

    def add(self, posts: Sequence[ScoredPost]) -> None:
        self._buffer.extend(posts)

    def _script_args(self) -> list[str | int]:
        k = self._keys
        args: list[str | int] = [k.seen_prefix, k.minute_prefix, k.top_prefix, self._marker_ttl]
        for scored in self._buffer:
            post = scored.post
            minute = minute_of(post.event_time)
            expire_at = int(minute.timestamp()) + self._retention
            args += [post.id, k.minute(minute).removeprefix(k.minute_prefix), expire_at]
            args += [bucket_field(ALL_SUBJECTS, post.platform, scored.sentiment), len(scored.subjects)]
            for subject in scored.subjects:
                args += [subject, bucket_field(subject, post.platform, scored.sentiment)]
        return args

    def flush(self) -> None:
        if not self._buffer:
            return
        try:
            counted = int(self._script(args=self._script_args()))
            minutes = sorted({minute_of(p.post.event_time).isoformat() for p in self._buffer})
            self._client.publish(self._keys.live_channel, json.dumps({"counted": counted, "minutes": minutes}))
        except redis.RedisError as exc:
            raise SinkError(f"Redis flush of {len(self._buffer)} posts failed: {exc}") from exc
        self.counted_last_flush = counted
        self._buffer.clear()

    def close(self) -> None:
        self._client.close()


class RedisLive:
    """The read side: rolling-window totals and top subjects, summed from minute buckets."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self._client = client or connect(settings)
        self._keys = RedisKeys(settings.redis_prefix)

    @staticmethod
    def window_minutes(minutes: int, now: datetime | None = None) -> list[datetime]:
        """The ``minutes`` minute starts ending with the current (partial) minute."""
        last = minute_of(now or datetime.now(UTC))
        return [last - timedelta(minutes=i) for i in range(minutes)]

    def window_counts(
        self, minutes: int, subject: str | None = None, now: datetime | None = None
    ) -> Counter[tuple[str, str, str]]:
        """Posts per (subject, platform, sentiment) over the window; subject ``*`` is every post once."""
        pipe = self._client.pipeline(transaction=False)
        for minute in self.window_minutes(minutes, now):
            pipe.hgetall(self._keys.minute(minute))
        counts: Counter[tuple[str, str, str]] = Counter()
        for bucket in pipe.execute():
            for field, value in bucket.items():
                key = split_field(field)
                if subject is None or key[0] == subject:
                    counts[key] += int(value)
        return counts

    def total(self, minutes: int, now: datetime | None = None) -> int:
        """Distinct posts counted in the window."""
        return sum(self.window_counts(minutes, ALL_SUBJECTS, now).values())

    def top_subjects(self, minutes: int, n: int = 10, now: datetime | None = None) -> list[tuple[str, int]]:
        keys = [self._keys.top(m) for m in self.window_minutes(minutes, now)]
        rows = cast(list[tuple[str, float]], self._client.zunion(keys, withscores=True))
        return [(subject, int(score)) for subject, score in rows[::-1][:n]]

    def close(self) -> None:
        self._client.close()
