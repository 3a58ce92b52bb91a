"""What near-duplicate detection needs of one text, computed once and shared by every implementation.

A ``Signature`` is the text's exact-copy digest, its MinHash values and its LSH band keys. The
in-memory index (``dedup.py``) and the Redis one (``pipeline.stores.redis.noise``) both take it, so
they cluster the same posts the same way. Everything in it is stable across processes and
restarts: blake2b rather than Python's salted ``hash()``, crc32 shingle hashes and seed 1 for the
MinHash permutations, so two workers (or one worker before and after a restart) give one text the
same signature.

A post's dedup key is its text in NFKC, casefolded, with URLs, mentions and everything but letters
and digits removed, so emoji padding, inserted punctuation, spacing and width tricks change
nothing. Shingles are character bigrams when the key is mostly Han (one edit in a 12-character
slogan keeps a Jaccard of ~0.75) and trigrams otherwise (Latin bigrams are too common to tell
texts apart). Keys shorter than ``min_chars`` or with fewer than ``min_shingles`` distinct
shingles (好评, 支持, 哈哈哈哈哈哈) get no signature: such phrases are common on their own.

LSH: the ``num_perm`` values are cut into ``bands`` bands of ``rows`` values, the split datasketch's
``MinHashLSH`` picks for the threshold (equal weights for false positives and negatives). Two
texts are candidates when any band is equal; a band key is a 64-bit blake2b of the band's index
and values, so one key per band and no collisions across bands.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from datasketch.minhash import _fmix

from pipeline.domain.noise import NoiseError
from pipeline.domain.noise.shingles import shingle_hashes, shingle_size
from pipeline.domain.text.forms import folded

NUM_PERM = 64  # MinHash values per signature
DIGEST_BYTES = 8  # 64 bits: a collision among a window's few million keys has odds of about 1e-7
MAX_KEY_CHARS = 2_000  # a 100k-character post is compared on its first 2000 letters: bounded cost

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|t\.cn/\w+", re.IGNORECASE)
_MENTION = re.compile(r"@[\w\-]{1,30}")
_NOT_ALNUM = re.compile(r"[\W_]+")


def dedup_key(text: str) -> str:
    """Letters and digits of the text, normalised; what two copies of a post have in common."""
    key = folded(text[: 4 * MAX_KEY_CHARS])
    if "://" in key or "www." in key or "t.cn/" in key:  # in every URL match; most keys have none
        key = _URL.sub(" ", key)
    return _NOT_ALNUM.sub("", _MENTION.sub(" ", key))[:MAX_KEY_CHARS]


@lru_cache(maxsize=16)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """``(bands, rows)`` as datasketch's ``MinHashLSH(threshold, num_perm)`` chooses them."""
    bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(bands), int(rows)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).hexdigest()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal MinHash values."""
    return float(np.count_nonzero(a == b)) / len(a)


@dataclass(frozen=True, slots=True, eq=False)
class Signature:
    digest: str  # hex blake2b of the dedup key: equal for exact copies (after normalisation)
    hashvalues: np.ndarray  # num_perm MinHash values, uint32
    bands: tuple[str, ...]  # one LSH bucket key (hex) per band

    def packed(self) -> bytes:
        """The MinHash values as big-endian uint32, the form the Redis script reads."""
        return self.hashvalues.astype(">u4").tobytes()


class Signer:
    """Signs texts; immutable after construction, so one instance may serve several threads."""

    def __init__(
        self, threshold: float = 0.6, num_perm: int = NUM_PERM, min_chars: int = 10, min_shingles: int = 8
    ) -> None:
        if not 0 < threshold <= 1 or num_perm < 16:
            raise NoiseError("0 < threshold <= 1 and num_perm >= 16 are required")
        if min_chars < 1 or min_shingles < 1:
            raise NoiseError("min_chars and min_shingles must be >= 1")
        self.threshold, self.num_perm = threshold, num_perm
        self.min_chars, self.min_shingles = min_chars, min_shingles
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        # datasketch's own permutations (seed 1, its default affine32 scheme), so the values are the ones
        # ``MinHash(num_perm, seed=1, hashfunc=zlib.crc32).update_batch(shingles)`` gives (a test).
        self._permutations = MinHash(num_perm=num_perm, seed=1, hashfunc=zlib.crc32).permutations
        width = 4 * self.rows  # a band key hashes the band's index (2 bytes) and its values' bytes
        self._band_spans = tuple(
            (band.to_bytes(2, "big"), band * width, (band + 1) * width) for band in range(self.bands)
        )

    def sign(self, text: str) -> Signature | None:
        """The text's signature; None when it is too short to take part (it never forms clusters)."""
        return self.sign_many([text])[0]

    def sign_many(self, texts: Sequence[str]) -> list[Signature | None]:
        """``sign`` of each text, with the MinHash arithmetic of all of them in one numpy pass: per text,
        datasketch's ``update_batch`` costs more in numpy call overhead than in arithmetic."""
        keys = [dedup_key(text) for text in texts]
        signatures: list[Signature | None] = [None] * len(texts)
        by_size: dict[int, list[int]] = {2: [], 3: []}
        for n, key in enumerate(keys):
            if len(key) >= self.min_chars:
                by_size[shingle_size(key)].append(n)
        for size, taking in by_size.items():
            if not taking:
                continue
            # crc32 rather than datasketch's default sha1: 40% cheaper, and the affine permutations that
            # follow mix its bits well enough for Jaccard estimates. A repeated shingle changes no minimum.
            hashed, counts, distinct = shingle_hashes([keys[n] for n in taking], size)
            a, b = self._permutations
            permuted = np.multiply.outer(a, _fmix(hashed, 32))  # one column per shingle: reduceat's fast axis
            permuted += b[:, None]
            values = np.minimum.reduceat(permuted, np.cumsum(counts) - counts, axis=1).T
            for n, row, kinds in zip(taking, values, distinct, strict=True):
                if kinds >= self.min_shingles:
                    # A copy of its own: a row view would keep the whole batch's array alive for as long
                    # as the noise index keeps this one signature.
                    signatures[n] = self._signature(keys[n], row.copy())
        return signatures

    def _signature(self, key: str, values: np.ndarray) -> Signature:
        raw = values.astype(">u4").tobytes()
        bands = tuple(_digest(prefix + raw[start:end]) for prefix, start, end in self._band_spans)
        return Signature(_digest(key.encode()), values, bands)
