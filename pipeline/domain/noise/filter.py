"""``NoiseFilter``: one verdict per post on duplicates and bots, from bounded recent state.

``suspected_bot`` is any of three reasons, each recorded in the verdict as evidence:
- ``flood``: the post's near-duplicate cluster got copies from many distinct authors within a short
  time (a coordinated wave: fresh accounts pasting one slogan, with edits and emoji padding);
- ``repeat``: the author posted near-duplicates of the same text several times within that time;
- ``burst``: the author is in a burst (more posts in a minute than a person writes) AND this post
  is a near-duplicate: an account pumping out copies.
A burst alone is reported (``author_burst``) but does not make a bot: news and aggregator accounts
post fast with texts of their own. A duplicate alone (an organic repost, a news lead syndicated by a
few accounts) is not suspected either: duplicates are data for the caller to count once or not.

Event time drives every window, so a replay gives the verdicts the live run gave. This filter
keeps its state in the process: with several workers each would see only its partitions' share
of the stream, so each would count a cluster's first copy (the deduplicated count would grow with
the number of workers) and a flood spread over W workers would reach the thresholds W times
later. Workers therefore share one state in Redis (``pipeline.stores.redis.noise``: the same rules
over the same ``Signature``s, ``YUQING_NOISE_STATE``); this one serves a single process, tests
and offline tools. Both take batches (``observe_batch``) behind the ``ObservesNoise`` protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.bursts import AuthorBursts, FloodTracker
from pipeline.domain.noise.dedup import MAX_BUCKET, NearDuplicateIndex
from pipeline.domain.noise.signature import Signature, Signer
from schemas.records import NoiseReason as Reason


@dataclass(frozen=True, slots=True)
class NoiseVerdict:
    cluster_id: str  # id of the cluster's first post; the post's own id when it starts one
    is_duplicate: bool
    suspected_bot: bool
    cluster_size: int = 1  # posts in the cluster so far (within the window)
    similarity: float = 0.0  # to the closest earlier post of the cluster
    reasons: tuple[Reason, ...] = ()
    author_burst: bool = False


@dataclass(frozen=True, slots=True)
class NoiseInput:
    """One post as the noise filter sees it. ``text``: best the cleaned own words (``CleanText``);
    ``t``: event time in epoch seconds; ``repost``: the platform says it is a repost."""

    post_id: str
    author_id: str
    text: str
    t: float
    repost: bool = False
    # When ``signed``, the text's signature was computed beforehand (in a text process, off the worker's
    # GIL) by a signer with the filter's own settings; None then means too short to take part.
    signature: Signature | None = None
    signed: bool = False


def signatures_of(items: Sequence[NoiseInput], signer: Signer) -> list[Signature | None]:
    """Each item's signature: the one it carries, else ``signer``'s, now (the unsigned in one batch)."""
    unsigned = iter(signer.sign_many([item.text for item in items if not item.signed]))
    return [item.signature if item.signed else next(unsigned) for item in items]


class ObservesNoise(Protocol):
    """What the workers need of a noise filter, whichever holds the state (memory or Redis)."""

    @property
    def signer(self) -> Signer:
        """How this filter signs texts: a caller that signs beforehand must use it."""
        ...

    def observe_batch(self, items: Sequence[NoiseInput]) -> list[NoiseVerdict]:
        """The verdicts on a batch of posts, in order, each judged after the ones before it."""
        ...

    def stats(self) -> dict[str, int]:
        """Sizes of the bounded state (``entries``, ``clusters``, ``authors``), for metrics."""
        ...


def noise_reasons(is_duplicate: bool, flood: bool, repeat: bool, burst: bool) -> tuple[Reason, ...]:
    """Why a post is suspected (empty: it is not), by the rules of the module docstring."""
    reasons: list[Reason] = []
    if flood and is_duplicate:
        reasons.append("flood")
    if repeat:
        reasons.append("repeat")
    if burst and is_duplicate:
        reasons.append("burst")
    return tuple(reasons)


@dataclass(frozen=True, slots=True)
class NoiseLimits:
    """The thresholds of a noise filter (``NoiseFilter``'s keyword arguments), checked once for
    every implementation."""

    window_s: float = 1800.0
    max_entries: int = 20_000
    similarity: float = 0.6
    min_chars: int = 10
    min_shingles: int = 8
    flood_window_s: float = 120.0
    flood_min_authors: int = 8
    flood_sticky_s: float = 600.0
    repeat_min: int = 3
    burst_window_s: float = 60.0
    burst_max_posts: int = 20

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.flood_window_s > 0 and self.burst_window_s > 0 and self.flood_sticky_s >= 0):
            raise NoiseError("window_s, flood_window_s and burst_window_s must be > 0, flood_sticky_s >= 0")
        if not 0 < self.similarity <= 1:
            raise NoiseError("0 < similarity <= 1 is required")
        if min(self.max_entries, self.min_chars, self.min_shingles, self.burst_max_posts) < 1:
            raise NoiseError("max_entries, min_chars, min_shingles and burst_max_posts must be >= 1")
        if self.flood_min_authors < 2 or self.repeat_min < 2:
            raise NoiseError("flood_min_authors and repeat_min must be >= 2")


def _seconds(event_time: datetime | float) -> float:
    return event_time.timestamp() if isinstance(event_time, datetime) else float(event_time)


class NoiseFilter:
    """Near-duplicate clusters plus flood, repeat and burst detection; thread-safe, memory-bounded."""

    def __init__(
        self,
        window_s: float = 1800.0,
        max_entries: int = 20_000,
        *,
        similarity: float = 0.6,
        min_chars: int = 10,
        min_shingles: int = 8,
        flood_window_s: float = 120.0,
        flood_min_authors: int = 8,
        flood_sticky_s: float = 600.0,
        repeat_min: int = 3,
        burst_window_s: float = 60.0,
        burst_max_posts: int = 20,
    ) -> None:
        self.limits = limits = NoiseLimits(
            window_s,
            max_entries,
            similarity,
            min_chars,
            min_shingles,
            flood_window_s,
            flood_min_authors,
            flood_sticky_s,
            repeat_min,
            burst_window_s,
            burst_max_posts,
        )
        self.index = NearDuplicateIndex(
            window_s=limits.window_s,
            max_entries=limits.max_entries,
            threshold=limits.similarity,
            min_chars=limits.min_chars,
            min_shingles=limits.min_shingles,
            max_bucket=MAX_BUCKET,
        )
        self.floods = FloodTracker(
            window_s=limits.flood_window_s,
            min_authors=limits.flood_min_authors,
            repeat_min=limits.repeat_min,
            sticky_s=limits.flood_sticky_s,
            max_clusters=limits.max_entries,
        )
        self.bursts = AuthorBursts(limits.burst_window_s, limits.burst_max_posts, max_authors=limits.max_entries)
        self._lock = threading.Lock()

    def observe(
        self, post_id: str, author_id: str, text: str, event_time: datetime | float, *, repost: bool = False
    ) -> NoiseVerdict:
        """The verdict on one post. ``text`` is best the cleaned own words (``CleanText.text``);
        ``repost``: the platform says this is a repost (``Post.parent_kind == "repost"``)."""
        item = NoiseInput(post_id, author_id, text, _seconds(event_time), repost)
        signature = self.index.signer.sign(text)  # the costly part, outside the lock
        with self._lock:
            return self._observe_signed(item, signature)

    def observe_batch(self, items: Sequence[NoiseInput]) -> list[NoiseVerdict]:
        """The verdicts on a batch, in order: the same as ``observe`` on each post in turn."""
        signatures = signatures_of(items, self.index.signer)
        with self._lock:
            return [self._observe_signed(item, sig) for item, sig in zip(items, signatures, strict=True)]

    def _observe_signed(self, item: NoiseInput, signature: Signature | None) -> NoiseVerdict:
        match = self.index.assign_signed(item.post_id, signature, item.t)
        burst = self.bursts.observe(item.author_id, item.t)
        flood = repeat = False
        size = 1
        if match.indexed:
            state = self.floods.observe(match.cluster_id, item.author_id, item.t, countable=not item.repost)
            size, flood, repeat = state.size, state.flood, state.repeat
        reasons = noise_reasons(match.is_duplicate, flood, repeat, burst)
        return NoiseVerdict(
            cluster_id=match.cluster_id,
            is_duplicate=match.is_duplicate,
            suspected_bot=bool(reasons),
            cluster_size=size,
            similarity=match.similarity,
            reasons=reasons,
            author_burst=burst,
        )

    @property
    def signer(self) -> Signer:
        return self.index.signer

    def stats(self) -> dict[str, int]:
        """Sizes of the bounded state, for the worker's metrics."""
        with self._lock:
            return {"entries": len(self.index), "clusters": len(self.floods), "authors": len(self.bursts)}
