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

Event time drives every window, so a replay gives the verdicts the live run gave. Each worker
process sees only its partitions' share of the stream: a flood spread over W workers reaches the
thresholds W times later, which the thresholds (settings) absorb for floods of any real size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from pipeline.domain.noise.bursts import AuthorBursts, FloodTracker
from pipeline.domain.noise.dedup import NearDuplicateIndex
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
        self.index = NearDuplicateIndex(
            window_s=window_s,
            max_entries=max_entries,
            threshold=similarity,
            min_chars=min_chars,
            min_shingles=min_shingles,
        )
        self.floods = FloodTracker(
            window_s=flood_window_s,
            min_authors=flood_min_authors,
            repeat_min=repeat_min,
            sticky_s=flood_sticky_s,
            max_clusters=max_entries,
        )
        self.bursts = AuthorBursts(window_s=burst_window_s, max_posts=burst_max_posts, max_authors=max_entries)
        self._lock = threading.Lock()

    def observe(
        self, post_id: str, author_id: str, text: str, event_time: datetime | float, *, repost: bool = False
    ) -> NoiseVerdict:
        """The verdict on one post. ``text`` is best the cleaned own words (``CleanText.text``);
        ``repost``: the platform says this is a repost (``Post.parent_kind == "repost"``)."""
        t = _seconds(event_time)
        with self._lock:
            match = self.index.assign(post_id, text, t)
            burst = self.bursts.observe(author_id, t)
            reasons: list[Reason] = []
            size = 1
            if match.indexed:
                state = self.floods.observe(match.cluster_id, author_id, t, countable=not repost)
                size = state.size
                if state.flood and match.is_duplicate:
                    reasons.append("flood")
                if state.repeat:
                    reasons.append("repeat")
            if burst and match.is_duplicate:
                reasons.append("burst")
        return NoiseVerdict(
            cluster_id=match.cluster_id,
            is_duplicate=match.is_duplicate,
            suspected_bot=bool(reasons),
            cluster_size=size,
            similarity=match.similarity,
            reasons=tuple(reasons),
            author_burst=burst,
        )

    def stats(self) -> dict[str, int]:
        """Sizes of the bounded state, for the worker's metrics."""
        with self._lock:
            return {"entries": len(self.index), "clusters": len(self.floods), "authors": len(self.bursts)}
