"""Typed, frozen, versioned records at yuqing's boundaries.

Each class matches a JSON Schema in ``schemas/json/`` (regenerate with ``yuqing schemas export``;
a unit test keeps the two in step). A breaking change bumps ``schema_version`` and the file name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt

Sentiment = Literal["negative", "neutral", "positive", "unknown"]
Stage = Literal["ingest", "score", "aggregate"]
Lang = Literal["zh", "en", "other"]
NoiseReason = Literal["flood", "repeat", "burst"]
SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive", "unknown")


def _as_utc(value: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f]+$")]

# Posts are stored with ClickHouse DateTime (1970-2106) and judged by live windows: older than this is a
# feed's mistake, not history anybody monitors. The upper bound is relative to now (posts.validate).
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_HASHTAGS = 32
MAX_HASHTAG_CHARS = 64
# A hashtag becomes a subject name, a Redis hash field part (fields are TAB-separated) and a key part:
# no control characters, no key or glob characters, and nothing yuqing reserves (``_all``, ``*``).
HASHTAG_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f*?\[\]:\\]")


def _event_time_in_range(value: datetime) -> datetime:
    value = _as_utc(value)
    if value < EARLIEST_EVENT_TIME:
        raise ValueError(f"before {EARLIEST_EVENT_TIME.date()}: not a live post")
    return value


def _hashtag(tag: str) -> str:
    if HASHTAG_FORBIDDEN.search(tag):
        raise ValueError(f"hashtag {tag[:MAX_HASHTAG_CHARS]!r} holds a control, key or glob character")
    if tag.startswith("_"):
        raise ValueError(f"hashtag {tag!r} is reserved (names starting with _ are yuqing's own)")
    return tag


EventTime = Annotated[datetime, AfterValidator(_event_time_in_range)]
Hashtag = Annotated[str, Field(min_length=1, max_length=MAX_HASHTAG_CHARS), AfterValidator(_hashtag)]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Engagement(Record):
    likes: NonNegativeInt = 0
    reposts: NonNegativeInt = 0
    comments: NonNegativeInt = 0


class Post(Record):
    """A social post as it enters yuqing (v2).

    v2 bounds what v1 left open: at most 32 hashtags of at most 64 characters, none holding a control,
    key or glob character or starting with ``_``, and an event time from 2000 on. A record that says
    ``schema_version: 1`` is still read, and held to the same bounds.
    """

    schema_version: Literal[1, 2] = 2
    id: Identifier = Field(description="Globally unique post id; the Kafka key and the idempotency key.")
    platform: Identifier = Field(description="Where it was posted, e.g. weibo, wechat, douyin, x.")
    author_id: Identifier
    text: str = Field(min_length=1, description="The post's text, whitespace-trimmed and never empty.")
    text_truncated: bool = Field(False, description="True when ingestion cut the text to the size limit.")
    event_time: EventTime = Field(description="When it was posted (UTC), from 2000-01-01 to a day from now.")
    lang: str | None = Field(None, max_length=16, description="Language code if the feed knows it.")
    url: str | None = Field(None, max_length=2048)
    parent_id: Identifier | None = Field(None, description="The post this one replies to or reposts.")
    parent_kind: Literal["reply", "repost"] | None = None
    engagement: Engagement = Engagement()
    hashtags: tuple[Hashtag, ...] = Field((), max_length=MAX_HASHTAGS, description="Topic tags without their # marks.")


class SentimentProbabilities(Record):
    negative: float = Field(ge=0, le=1)
    neutral: float = Field(ge=0, le=1)
    positive: float = Field(ge=0, le=1)


class ScoredPost(Record):
    """A post with what the model and the noise filter said about it (v2).

    v2 adds what the text stages found: the detected language, the hot-word terms, and the
    post's near-duplicate cluster with the bot suspicion. ``counts_deduplicated`` says whether the
    post counts in the deduplicated series (the ones alerts read); every post counts in the raw ones.
    """

    schema_version: Literal[2] = 2
    post: Post
    sentiment: Sentiment
    probabilities: SentimentProbabilities
    subjects: tuple[str, ...] = Field(min_length=1, description="Subjects the post counts under.")
    monitored: bool = Field(False, description="True when the subjects are monitored ones, not hashtags or _all.")
    lang: Lang = Field("other", description="Language detected from the cleaned text.")
    terms: tuple[str, ...] = Field((), description="Distinct hot-word terms of the post, in order of first use.")
    cluster_id: Identifier = Field(description="First post of its near-duplicate cluster (its own id if none).")
    duplicate: bool = Field(False, description="A near-duplicate of an earlier post in the window.")
    suspected_bot: bool = Field(False, description="Part of a flood, a repeat or a burst of copies.")
    noise_reasons: tuple[NoiseReason, ...] = ()
    model_id: str
    model_version: str
    scored_at: UtcDatetime
    processing_ms: float = Field(ge=0, description="Time from leaving posts.raw to scored, per batch.")

    @property
    def counts_deduplicated(self) -> bool:
        """Counted in the deduplicated series: the first of its cluster, and no bot."""
        return not self.duplicate and not self.suspected_bot


class Aggregate(Record):
    """The count of posts in one minute for one (subject, platform, sentiment) (v1)."""

    schema_version: Literal[1] = 1
    minute: UtcDatetime
    subject: str
    platform: str
    sentiment: Sentiment
    count: NonNegativeInt


class Alert(Record):
    """A detector's finding about one subject, with its evidence (v1)."""

    schema_version: Literal[1] = 1
    id: Identifier
    subject: str
    kind: Literal["negative_surge", "volume_burst", "sentiment_flip"]
    state: Literal["opened", "updated", "resolved"]
    severity: Literal["info", "warning", "critical"]
    started_at: UtcDatetime = Field(description="The minute the surge started (event time).")
    updated_at: UtcDatetime
    evidence: dict[str, object] = Field(default_factory=dict)
    acknowledged_by: str | None = Field(None, max_length=128, description="Who acknowledged it, if anyone.")
    acknowledged_at: UtcDatetime | None = None


class Rejection(Record):
    """A record ingestion or a worker refused, as written to the dead-letter topic (v1)."""

    schema_version: Literal[1] = 1
    reason: str
    stage: Stage
    raw: str = Field(description="The record as received, decoded with replacement characters if need be.")
    rejected_at: UtcDatetime


RECORDS: dict[str, type[Record]] = {
    "post.v2": Post,
    "scored_post.v2": ScoredPost,
    "aggregate.v1": Aggregate,
    "alert.v1": Alert,
    "rejection.v1": Rejection,
}
