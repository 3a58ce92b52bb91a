"""Near-duplicate clusters over a bounded window: MinHash + LSH (datasketch) on character shingles.

A post's dedup key is its text in NFKC, casefolded, with URLs, mentions and everything but letters
and digits removed, so emoji padding, inserted punctuation, spacing and width tricks change
nothing. Shingles are character bigrams when the key is mostly Han (one edit in a 12-character
slogan keeps a Jaccard of ~0.75) and trigrams otherwise (Latin bigrams are too common to tell
texts apart). Keys shorter than ``min_chars`` or with fewer than ``min_shingles`` distinct
shingles (好评, 支持, 哈哈哈哈哈哈) never form clusters: such phrases are common on their own.

A cluster's id is the id of its first post and stays the same while any of its entries is in the
window. Memory is bounded whatever the input rate: entries older than ``window_s`` (event time,
against the latest seen) are evicted, and at most ``max_entries`` are kept, least recently
matched first. Exact repeats of a known key, and variants almost identical to an entry (>= 0.9),
add no entry; a cluster keeps at most ``max_variants`` entries, so a flood of edited copies
cannot fill the index or make LSH queries return huge candidate sets. An entry costs about 4 KB
(measured: mostly datasketch's LSH band tables), so the default 20,000 entries is ~80 MB; at high
rates ``max_entries`` rather than ``window_s`` sets how far back a copy is recognised.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.domain.noise import NoiseError

MAX_KEY_CHARS = 2_000  # a 100k-character post is compared on its first 2000 letters: bounded cost
NEAR_IDENTICAL = 0.9  # a variant this close to an entry adds nothing to the cluster's reach
MAX_EXACT_PER_ENTRY = 64

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|t\.cn/\w+", re.IGNORECASE)
_MENTION = re.compile(r"@[\w\-]{1,30}")
_NOT_ALNUM = re.compile(r"[\W_]+")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def dedup_key(text: str) -> str:
    """Letters and digits of the text, normalised; what two copies of a post have in common."""
    folded = unicodedata.normalize("NFKC", text[: 4 * MAX_KEY_CHARS]).casefold()
    return _NOT_ALNUM.sub("", _MENTION.sub(" ", _URL.sub(" ", folded)))[:MAX_KEY_CHARS]


def shingles(key: str) -> set[bytes]:
    size = 2 if 2 * len(_HAN.findall(key)) >= len(key) else 3
    return {key[i : i + size].encode() for i in range(max(1, len(key) - size + 1))}


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
    hashvalues: np.ndarray
    exact: list[int] = field(default_factory=list)


class NearDuplicateIndex:
    """Assigns each post to a near-duplicate cluster; not thread-safe (``NoiseFilter`` locks)."""

    def __init__(
        self,
        window_s: float = 1800.0,
        max_entries: int = 20_000,
        threshold: float = 0.6,
        num_perm: int = 64,
        min_chars: int = 10,
        min_shingles: int = 8,
        max_variants: int = 32,
    ) -> None:
        if not window_s > 0 or max_entries < 1 or not 0 < threshold <= 1 or num_perm < 16:
            raise NoiseError("window_s > 0, max_entries >= 1, 0 < threshold <= 1 and num_perm >= 16 are required")
        if min_chars < 1 or min_shingles < 1 or max_variants < 1:
            raise NoiseError("min_chars, min_shingles and max_variants must be >= 1")
        self.window_s, self.max_entries, self.threshold = float(window_s), max_entries, threshold
        self.num_perm, self.min_chars, self.min_shingles = num_perm, min_chars, min_shingles
        self.max_variants = max_variants
        template = MinHash(num_perm=num_perm, seed=1, hashfunc=zlib.crc32)
        self._permutations, self._scheme = template.permutations, template.scheme
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._exact: dict[int, int] = {}  # hash of a key -> entry
        self._variants: Counter[str] = Counter()
        self._next = 0
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def _minhash(self, grams: set[bytes]) -> MinHash:
        # crc32 rather than datasketch's default sha1: 40% cheaper, and the affine permutations
        # that follow mix its bits well enough for Jaccard estimates.
        sketch = MinHash(
            num_perm=self.num_perm, seed=1, hashfunc=zlib.crc32, permutations=self._permutations, scheme=self._scheme
        )
        sketch.update_batch(list(grams))
        return sketch

    def _evict(self) -> None:
        cutoff = self._watermark - self.window_s
        while self._entries:
            seq, entry = next(iter(self._entries.items()))
            if entry.seen >= cutoff and len(self._entries) <= self.max_entries:
                break
            del self._entries[seq]
            self._lsh.remove(seq)
            for digest in entry.exact:
                if self._exact.get(digest) == seq:
                    del self._exact[digest]
            self._variants[entry.cluster_id] -= 1
            if self._variants[entry.cluster_id] <= 0:
                del self._variants[entry.cluster_id]

    def _touch(self, seq: int, t: float) -> _Entry:
        entry = self._entries[seq]
        entry.seen = max(entry.seen, t)
        self._entries.move_to_end(seq)
        return entry

    def _add(self, cluster_id: str, t: float, sketch: MinHash, digest: int) -> None:
        seq, self._next = self._next, self._next + 1
        self._entries[seq] = _Entry(cluster_id, t, sketch.hashvalues, [digest])
        self._lsh.insert(seq, sketch, check_duplication=False)
        self._exact[digest] = seq
        self._variants[cluster_id] += 1

    def assign(self, post_id: str, text: str, t: float) -> DupMatch:
        """The cluster of one post observed at event time ``t`` (seconds)."""
        key = dedup_key(text)
        if len(key) < self.min_chars:
            return DupMatch(post_id, False, 0.0, False)
        grams = shingles(key)
        if len(grams) < self.min_shingles:
            return DupMatch(post_id, False, 0.0, False)
        self._watermark = max(self._watermark, t)
        self._evict()
        digest = hash(key)  # in-process only, so Python's salted hash is fine
        seq = self._exact.get(digest)
        if seq is not None:
            return DupMatch(self._touch(seq, t).cluster_id, True, 1.0, True)
        sketch = self._minhash(grams)
        best_seq, best = -1, 0.0
        for candidate in self._lsh.query(sketch):
            similarity = float(np.count_nonzero(self._entries[candidate].hashvalues == sketch.hashvalues))
            similarity /= self.num_perm
            if similarity > best:
                best_seq, best = candidate, similarity
        if best_seq < 0 or best < self.threshold:
            self._add(post_id, t, sketch, digest)
            self._evict()
            return DupMatch(post_id, False, 0.0, True)
        entry = self._touch(best_seq, t)
        if best < NEAR_IDENTICAL and self._variants[entry.cluster_id] < self.max_variants:
            self._add(entry.cluster_id, t, sketch, digest)
            self._evict()
        elif len(entry.exact) < MAX_EXACT_PER_ENTRY:
            entry.exact.append(digest)  # its exact repeats take the fast path next time
            self._exact[digest] = best_seq
        return DupMatch(entry.cluster_id, True, best, True)
