"""The interface every sink implements, and the pure bucketing they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from pipeline.errors import YuqingError
from schemas.records import ScoredPost, Sentiment


class SinkError(YuqingError):
    """A sink could not write (its store is down or slow); its buffered rows are kept for the retry."""


class SinkRefused(SinkError):
    """The store refused the buffered rows for what they hold: retrying the same rows cannot help."""


class Sink(Protocol):
    """Buffers scored posts with ``add`` and writes them with ``flush``.

    ``flush`` must be idempotent per post id: flushing a post that an earlier flush already
    wrote (a replay after a crash) must not change any count. On failure it raises
    ``SinkError`` and keeps its buffer; ``SinkRefused`` when the data itself is the cause, so the
    caller can drop the buffer (``discard``) and isolate the offending posts. The calls are blocking;
    workers run ``flush`` in a thread.
    """

    name: str

    def prepare(self) -> None:
        """Get the store ready to be written (its schema); ``SinkError`` when it cannot yet, and then
        the first flush prepares it."""
        ...

    def add(self, posts: Sequence[ScoredPost]) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...

    def close(self) -> None: ...


class BucketKey(NamedTuple):
    minute: datetime
    subject: str
    platform: str
    sentiment: Sentiment


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def bucket_keys(post: ScoredPost) -> list[BucketKey]:
    """The minute buckets one scored post counts in: one per subject."""
    minute = minute_of(post.post.event_time)
    return [BucketKey(minute, subject, post.post.platform, post.sentiment) for subject in post.subjects]


def count_buckets(posts: Iterable[ScoredPost]) -> Counter[BucketKey]:
    """Posts per bucket, each post id counted once however often it appears."""
    seen: set[str] = set()
    counts: Counter[BucketKey] = Counter()
    for post in posts:
        if post.post.id not in seen:
            seen.add(post.post.id)
            counts.update(bucket_keys(post))
    return counts
