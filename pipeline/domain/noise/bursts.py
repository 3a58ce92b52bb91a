"""Bot-like behaviour over time: authors posting too fast, and near-duplicate clusters that flood.

Both trackers keep recent state only, evicted by event time (all state whose time is out of the
window behind the latest event time seen) and capped in size, least recently active (in event
time) first, so memory is bounded whatever the input rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.expiry import Expiry


class AuthorBursts:
    """Flags an author with more than ``max_posts`` posts within ``window_s`` seconds."""

    def __init__(self, window_s: float = 60.0, max_posts: int = 20, max_authors: int = 100_000) -> None:
        if not window_s > 0 or max_posts < 1 or max_authors < 1:
            raise NoiseError("AuthorBursts needs window_s > 0, max_posts >= 1 and max_authors >= 1")
        self.window_s, self.max_posts, self.max_authors = float(window_s), max_posts, max_authors
        self._recent: dict[str, deque[float]] = {}
        self._expiry: Expiry[str] = Expiry()  # author -> their latest post time still remembered
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._recent)

    def observe(self, author_id: str, t: float) -> bool:
        """Record a post; True when it makes the author's count in the window exceed ``max_posts``."""
        self._watermark = max(self._watermark, t)
        times = self._recent.get(author_id)
        if times is None:
            times = self._recent[author_id] = deque(maxlen=self.max_posts + 1)
        times.append(t)
        # The deque holds the last max_posts + 1 posts; a burst is all of them within the window.
        burst = len(times) > self.max_posts and max(times) - min(times) <= self.window_s
        self._expiry.set(author_id, max(times))
        for author in self._expiry.expired(self._watermark - self.window_s):
            del self._recent[author]
        while len(self._recent) > self.max_authors:
            del self._recent[self._expiry.pop_oldest()]
        return burst


def flood_memory(min_authors: int, repeat_min: int) -> int:
    """Copies a cluster remembers: enough to see ``min_authors`` distinct authors even with some
    repeats among them, and an author's ``repeat_min`` repeats."""
    return max(4 * min_authors, 4 * repeat_min)


@dataclass(slots=True)
class _Cluster:
    members: deque[tuple[float, str, bool]]  # (time, author, counts towards a flood)
    size: int = 0
    flood_until: float = float("-inf")
    last: float = float("-inf")


@dataclass(frozen=True, slots=True)
class ClusterState:
    size: int  # posts in the cluster since it was first tracked
    flood: bool  # copies from many authors within a short time
    repeat: bool  # this author posted the cluster's text several times within that time


class FloodTracker:
    """Per near-duplicate cluster: is it a coordinated flood, and is this author repeating itself?

    A flood is copies from at least ``min_authors`` distinct authors within ``window_s``; declared
    reposts do not count towards it (reposting is visible amplification, not disguised copying).
    Once a flood, later copies stay flagged for ``sticky_s`` after the last time it qualified, so
    the slow tail of a bot wave is caught too. The first ``min_authors - 1`` copies of a wave are
    not flagged: each verdict is final when given and does not wait for the future.
    """

    def __init__(
        self,
        window_s: float = 120.0,
        min_authors: int = 8,
        repeat_min: int = 3,
        sticky_s: float = 600.0,
        max_clusters: int = 100_000,
    ) -> None:
        if not window_s > 0 or min_authors < 2 or repeat_min < 2 or sticky_s < 0 or max_clusters < 1:
            raise NoiseError("FloodTracker needs window_s > 0, min_authors >= 2, repeat_min >= 2, sticky_s >= 0")
        self.window_s, self.min_authors, self.repeat_min = float(window_s), min_authors, repeat_min
        self.sticky_s, self.max_clusters = float(sticky_s), max_clusters
        self._keep = flood_memory(min_authors, repeat_min)
        self._clusters: dict[str, _Cluster] = {}
        self._expiry: Expiry[str] = Expiry()  # cluster -> its last copy's time
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._clusters)

    def observe(self, cluster_id: str, author_id: str, t: float, countable: bool = True) -> ClusterState:
        self._watermark = max(self._watermark, t)
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            cluster = self._clusters[cluster_id] = _Cluster(deque(maxlen=self._keep))
        cluster.members.append((t, author_id, countable))
        cluster.size += 1
        cluster.last = max(cluster.last, t)
        self._expiry.set(cluster_id, cluster.last)
        since = t - self.window_s
        recent = [(author, counts) for when, author, counts in cluster.members if when >= since]
        if len({author for author, counts in recent if counts}) >= self.min_authors:
            cluster.flood_until = max(cluster.flood_until, t + self.sticky_s)
        repeat = sum(author == author_id for author, _ in recent) >= self.repeat_min
        self._evict()
        return ClusterState(cluster.size, t <= cluster.flood_until, repeat)

    def _evict(self) -> None:
        for cluster_id in self._expiry.expired(self._watermark - max(self.window_s, self.sticky_s)):
            del self._clusters[cluster_id]
        while len(self._clusters) > self.max_clusters:
            del self._clusters[self._expiry.pop_oldest()]
