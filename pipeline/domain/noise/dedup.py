"""Near-duplicate clusters over a bounded window: MinHash + LSH on character shingles, in memory.

What a text contributes (dedup key, shingles, MinHash values, LSH band keys) is its ``Signature``
(``signature.py``), shared with the Redis implementation so both cluster alike; this module is
the in-memory state around it.

A cluster's id is the id of its first post and stays the same while any of its entries is in the
window. Memory is bounded whatever the input rate: every entry last matched more than ``window_s``
before the latest event time seen is evicted, and at most ``max_entries`` are kept (beyond, the
least recently matched, in event time, goes first). Exact repeats of a known key, and variants
almost identical to an entry (>= 0.9), add no entry; a cluster keeps at most ``max_variants``
entries, so a flood of edited copies cannot fill the index. The noise filters cap an LSH bucket at
its ``MAX_BUCKET`` newest entries, so no post is compared with more than ``bands * MAX_BUCKET``
candidates (the Redis script holds Redis while it runs, so its work per post must be bounded; the
in-memory filter keeps the same cap to give the same verdicts). At high rates ``max_entries``
rather than ``window_s`` sets how far back a copy is recognised.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.expiry import Expiry
from pipeline.domain.noise.shingles import shingles
from pipeline.domain.noise.signature import MAX_KEY_CHARS, NUM_PERM, Signature, Signer, dedup_key, similarity

__all__ = ["MAX_KEY_CHARS", "MAX_VARIANTS", "DupMatch", "NearDuplicateIndex", "dedup_key", "shingles"]

NEAR_IDENTICAL = 0.9  # a variant this close to an entry adds nothing to the cluster's reach
MAX_EXACT_PER_ENTRY = 64
MAX_VARIANTS = 32  # entries one cluster may hold
MAX_BUCKET = 64  # entries an LSH bucket of the noise filters keeps, newest; older ones are not compared


@dataclass(frozen=True, slots=True)
class DupMatch:
    cluster_id: str
    is_duplicate: bool
    similarity: float  # to the closest earlier post: 1.0 exact, else estimated Jaccard; 0.0 without one
    indexed: bool  # False when the text was too short to take part


@dataclass(slots=True)
class _Entry:
    cluster_id: str
    seen: float
    signature: Signature
    exact: list[str] = field(default_factory=list)  # digests of exact copies that resolve to it


class NearDuplicateIndex:
    """Assigns each post to a near-duplicate cluster; not thread-safe (``NoiseFilter`` locks)."""

    def __init__(
        self,
        window_s: float = 1800.0,
        max_entries: int = 20_000,
        threshold: float = 0.6,
        num_perm: int = NUM_PERM,
        min_chars: int = 10,
        min_shingles: int = 8,
        max_variants: int = MAX_VARIANTS,
        max_bucket: int | None = None,
    ) -> None:
        if not window_s > 0 or max_entries < 1 or not 0 < threshold <= 1 or num_perm < 16:
            raise NoiseError("window_s > 0, max_entries >= 1, 0 < threshold <= 1 and num_perm >= 16 are required")
        if min_chars < 1 or min_shingles < 1 or max_variants < 1 or (max_bucket is not None and max_bucket < 1):
            raise NoiseError("min_chars, min_shingles, max_variants and max_bucket must be >= 1")
        self.window_s, self.max_entries, self.threshold = float(window_s), max_entries, threshold
        self.max_variants, self.max_bucket = max_variants, max_bucket
        self.signer = Signer(threshold, num_perm, min_chars, min_shingles)
        self._entries: dict[int, _Entry] = {}
        self._expiry: Expiry[int] = Expiry()  # entry -> when it was last matched
        # Band key -> entries in insertion order (a dict as an ordered set), the newest max_bucket.
        self._buckets: dict[str, dict[int, None]] = {}
        self._exact: dict[str, int] = {}  # digest of a key -> entry
        self._variants: Counter[str] = Counter()
        self._next = 0
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        for seq in self._expiry.expired(self._watermark - self.window_s):
            self._remove(seq)
        while len(self._entries) > self.max_entries:
            self._remove(self._expiry.pop_oldest())

    def _remove(self, seq: int) -> None:
        entry = self._entries.pop(seq)
        for band in entry.signature.bands:
            bucket = self._buckets.get(band)
            if bucket is not None:
                bucket.pop(seq, None)
                if not bucket:
                    del self._buckets[band]
        for digest in entry.exact:
            if self._exact.get(digest) == seq:
                del self._exact[digest]
        self._variants[entry.cluster_id] -= 1
        if self._variants[entry.cluster_id] <= 0:
            del self._variants[entry.cluster_id]

    def _touch(self, seq: int, t: float) -> _Entry:
        entry = self._entries[seq]
        entry.seen = max(entry.seen, t)
        self._expiry.set(seq, entry.seen)
        return entry

    def _add(self, cluster_id: str, t: float, signature: Signature) -> None:
        seq, self._next = self._next, self._next + 1
        self._entries[seq] = _Entry(cluster_id, t, signature, [signature.digest])
        self._expiry.set(seq, t)
        for band in signature.bands:
            bucket = self._buckets.setdefault(band, {})
            bucket[seq] = None
            if self.max_bucket is not None and len(bucket) > self.max_bucket:
                del bucket[next(iter(bucket))]
        self._exact[signature.digest] = seq
        self._variants[cluster_id] += 1

    def _candidates(self, signature: Signature) -> list[int]:
        found: set[int] = set()
        for band in signature.bands:
            found.update(self._buckets.get(band, ()))
        # Oldest first, so that of equally similar entries the oldest wins, as in the Redis script.
        return sorted(found)

    def assign(self, post_id: str, text: str, t: float) -> DupMatch:
        """The cluster of one post observed at event time ``t`` (seconds)."""
        return self.assign_signed(post_id, self.signer.sign(text), t)

    def assign_signed(self, post_id: str, signature: Signature | None, t: float) -> DupMatch:
        """As ``assign``, for a text already signed by ``self.signer`` (None: too short to take part)."""
        if signature is None:
            return DupMatch(post_id, False, 0.0, False)
        self._watermark = max(self._watermark, t)
        self._evict()
        seq = self._exact.get(signature.digest)
        if seq is not None:
            return DupMatch(self._touch(seq, t).cluster_id, True, 1.0, True)
        best_seq, best = -1, 0.0
        for candidate in self._candidates(signature):
            score = similarity(self._entries[candidate].signature.hashvalues, signature.hashvalues)
            if score > best:
                best_seq, best = candidate, score
        if best_seq < 0 or best < self.threshold:
            self._add(post_id, t, signature)
            self._evict()
            return DupMatch(post_id, False, 0.0, True)
        entry = self._touch(best_seq, t)
        if best < NEAR_IDENTICAL and self._variants[entry.cluster_id] < self.max_variants:
            self._add(entry.cluster_id, t, signature)
            self._evict()
        elif len(entry.exact) < MAX_EXACT_PER_ENTRY:
            entry.exact.append(signature.digest)  # its exact repeats take the fast path next time
            self._exact[signature.digest] = best_seq
        return DupMatch(entry.cluster_id, True, best, True)
