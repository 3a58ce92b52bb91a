"""The Redis key layout (documented in schemas/redis.md); the only place key names are spelt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

FIELD_SEP = "\t"
ALL_SUBJECTS = "*"  # pseudo-subject under which every post counts exactly once


def minute_stamp(minute: datetime) -> str:
    return minute.strftime("%Y%m%d%H%M")


def bucket_field(subject: str, platform: str, sentiment: str) -> str:
    return FIELD_SEP.join((subject, platform, sentiment))


def split_field(field: str) -> tuple[str, str, str]:
    subject, platform, sentiment = field.split(FIELD_SEP)
    return subject, platform, sentiment


@dataclass(frozen=True)
class NoiseKeys:
    """The shared noise filter's state (``noise.py``, ``noise.lua``): a few keys whatever the traffic."""

    entries: str  # hash: entry seq -> msgpack [cluster id, packed MinHash, band keys, exact digests]
    seen: str  # sorted set: entry seq -> last event time it matched (eviction order)
    exact: str  # hash: dedup-key digest -> entry seq
    lsh: str  # hash: band key -> comma-separated entry seqs, the newest MAX_BUCKET
    variants: str  # hash: cluster id -> entries it holds
    clusters: str  # hash: cluster id -> msgpack flood state (size, last, flood until, recent copies)
    cluster_times: str  # sorted set: cluster id -> last event time (eviction order)
    authors: str  # hash: author id -> msgpack list of their latest post times
    author_times: str  # sorted set: author id -> latest post time (eviction order)
    meta: str  # hash: next entry seq and the two event-time watermarks
    verdicts_prefix: str  # + event minute (epoch s // 60): hash post id -> verdict JSON, for replays


@dataclass(frozen=True)
class RedisKeys:
    prefix: str

    def seen(self, post_id: str) -> str:
        return f"{self.prefix}:seen:{post_id}"

    def minute(self, minute: datetime) -> str:
        return f"{self.prefix}:min:{minute_stamp(minute)}"

    def deduplicated(self, minute: datetime) -> str:
        return f"{self.prefix}:dmin:{minute_stamp(minute)}"

    def top(self, minute: datetime) -> str:
        return f"{self.prefix}:top:{minute_stamp(minute)}"

    def hot(self, minute: datetime, subject: str) -> str:
        return f"{self.prefix}:hot:{minute_stamp(minute)}:{subject}"

    def alert(self, alert_id: str) -> str:
        return f"{self.prefix}:alert:{alert_id}"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def alert_stream(self) -> str:
        return f"{self.prefix}:alerts:stream"

    @property
    def alert_channel(self) -> str:
        return f"{self.prefix}:alerts:live"

    @property
    def alert_deliveries(self) -> str:
        return f"{self.prefix}:alerts:deliveries"

    @property
    def watermark(self) -> str:
        return f"{self.prefix}:watermark"

    @property
    def detection_dropped(self) -> str:
        return f"{self.prefix}:detection:dropped"

    def negative_posts(self, minute: datetime, subject: str) -> str:
        return f"{self.prefix}:neg:{minute_stamp(minute)}:{subject}"

    @property
    def negative_posts_prefix(self) -> str:
        return f"{self.prefix}:neg:"

    @property
    def subjects(self) -> str:
        return f"{self.prefix}:subjects"

    @property
    def subjects_hash(self) -> str:
        return f"{self.prefix}:subjects:hash"

    @property
    def live_channel(self) -> str:
        return f"{self.prefix}:live"

    @property
    def noise(self) -> NoiseKeys:
        base = f"{self.prefix}:noise"
        return NoiseKeys(
            entries=f"{base}:entries",
            seen=f"{base}:seen",
            exact=f"{base}:exact",
            lsh=f"{base}:lsh",
            variants=f"{base}:variants",
            clusters=f"{base}:clusters",
            cluster_times=f"{base}:clusters:t",
            authors=f"{base}:authors",
            author_times=f"{base}:authors:t",
            meta=f"{base}:meta",
            verdicts_prefix=f"{base}:v:",
        )

    @property
    def seen_prefix(self) -> str:
        return f"{self.prefix}:seen:"

    @property
    def minute_prefix(self) -> str:
        return f"{self.prefix}:min:"

    @property
    def deduplicated_prefix(self) -> str:
        return f"{self.prefix}:dmin:"

    @property
    def top_prefix(self) -> str:
        return f"{self.prefix}:top:"

    @property
    def hot_prefix(self) -> str:
        return f"{self.prefix}:hot:"
