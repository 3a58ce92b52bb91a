"""TF-IDF features of a fitted character n-gram ``TfidfVectorizer``, computed for a whole batch in numpy.

scikit-learn's ``transform`` cuts each text into n-grams in Python and looks each one up in its
vocabulary, a dict of some 300,000 strings: a post has hundreds of n-grams, and those lookups were most
of the baseline's time (docs/benchmarks.md). Here a batch's texts become one array of code points; an
n-gram of up to three characters is one 63-bit integer (21 bits a code point, so n-grams of different
lengths never collide), every window of every text is keyed at once, and the keys are found in the
vocabulary's sorted keys with one ``searchsorted``. The weighting is the vectoriser's own settings.

It gives ``vectorizer.transform(texts)`` exactly (a test); ``NgramFeatures.of`` returns None for a
vectoriser it does not reproduce (another analyser, a custom preprocessor, accents stripped, longer
n-grams), and the caller uses scikit-learn's path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.preprocessing import normalize

BITS = 21  # a code point, plus one so that no character keys as zero, fits 21 bits
MAX_N = 3  # three characters of 21 bits fill a 63-bit key
# scikit-learn's character analyser collapses runs of two or more whitespace characters to one space
# (``_VectorizerMixin._white_spaces``); a single newline or tab stays as it is.
_WHITE_SPACES = re.compile(r"\s\s+")


def ngram_key(ngram: str) -> int:
    key = 0
    for char in ngram:
        key = (key << BITS) | (ord(char) + 1)
    return key


class NgramFeatures:
    """One fitted vectoriser's vocabulary as sorted integer keys; immutable, so threads may share it."""

    def __init__(self, vectorizer: Any) -> None:
        self.vectorizer = vectorizer
        terms = list(vectorizer.vocabulary_)
        keys = np.fromiter(map(ngram_key, terms), np.uint64, len(terms))
        order = np.argsort(keys)
        self._keys = keys[order]
        self._columns = np.fromiter(map(vectorizer.vocabulary_.__getitem__, terms), np.int64, len(terms))[order]

    @classmethod
    def of(cls, vectorizer: Any) -> NgramFeatures | None:
        """The fast features of ``vectorizer``, or None when they would not be exactly scikit-learn's."""
        if getattr(vectorizer, "vocabulary_", None) is None:
            return None  # not fitted
        low, high = vectorizer.ngram_range
        plain = (
            vectorizer.analyzer == "char"
            and vectorizer.input == "content"
            and vectorizer.preprocessor is None
            and vectorizer.strip_accents is None
            and 1 <= low <= high <= MAX_N
        )
        if not plain or not all(low <= len(term) <= high for term in vectorizer.vocabulary_):
            return None
        return cls(vectorizer)

    def transform(self, texts: Sequence[str]) -> csr_matrix:
        """``self.vectorizer.transform(texts)``: TF-IDF rows, one per text."""
        counts = self.counts(texts)
        vectorizer = self.vectorizer
        if vectorizer.binary:
            counts.data.fill(1)
        if vectorizer.sublinear_tf:
            np.log(counts.data, out=counts.data)
            counts.data += 1
        if vectorizer.use_idf:
            counts.data *= vectorizer.idf_[counts.indices]
        return normalize(counts, norm=vectorizer.norm, copy=False) if vectorizer.norm else counts

    def counts(self, texts: Sequence[str]) -> csr_matrix:
        """How often each vocabulary n-gram occurs in each text, as ``CountVectorizer`` counts them."""
        vectorizer = self.vectorizer
        prepared = [_WHITE_SPACES.sub(" ", text.lower() if vectorizer.lowercase else text) for text in texts]
        lengths = np.fromiter(map(len, prepared), np.int64, len(prepared))
        # surrogatepass: a lone surrogate is a character to scikit-learn too, not an error.
        encoded = "".join(prepared).encode("utf-32-le", "surrogatepass")
        points = np.frombuffer(encoded, dtype=np.uint32).astype(np.uint64) + 1
        rows = np.repeat(np.arange(len(prepared)), lengths)
        text_end = np.repeat(np.cumsum(lengths), lengths)  # where each character's text ends
        starts = np.arange(len(points))
        low, high = vectorizer.ngram_range
        keys, key_rows = [], []
        for n in range(low, high + 1):
            windows = len(points) - n + 1
            if windows <= 0:
                continue
            key = points[:windows].copy()
            for offset in range(1, n):
                key <<= np.uint64(BITS)
                key |= points[offset : offset + windows]
            inside = starts[:windows] + n <= text_end[:windows]  # windows that cross into the next text go
            keys.append(key[inside])
            key_rows.append(rows[:windows][inside])
        shape = (len(prepared), len(vectorizer.vocabulary_))
        if not keys:
            return csr_matrix(shape, dtype=vectorizer.dtype)
        every_key, every_row = np.concatenate(keys), np.concatenate(key_rows)
        found_at = np.searchsorted(self._keys, every_key)
        found_at[found_at == len(self._keys)] = 0
        known = self._keys[found_at] == every_key
        ones = np.ones(int(known.sum()), dtype=vectorizer.dtype)
        matrix = csr_matrix((ones, (every_row[known], self._columns[found_at[known]])), shape=shape)
        matrix.sum_duplicates()  # repeats of an n-gram in a text add up, and the columns come sorted
        return matrix
