"""Which monitored subjects a cleaned post is about.

Terms are found two ways: as substrings of the post (its own words, the repost chain it passes on,
its hashtags and mentions), so 华为 matches in 华为手机真好 however jieba splits it; and as whole
tokens, so a caller may pass tokens normalised further than the text (converted, stemmed). Latin
terms must sit on word boundaries (``ai`` is not in ``said``, ``apple`` is not in ``pineapple``;
a plural needs its own term). Everything is compared in ``normalise_term`` form (NFKC, casefold).

Substrings are found with one Aho-Corasick automaton over every term of the set (pyahocorasick,
C): one pass over the text whatever the number of terms, overlapping matches included (华为 and
华为手机 both). A regex alternation of the same terms measured 8x slower here on 500 terms (it
tries the alternatives at each position) and reports only one match per position. The automaton
and per-subject term-id sets are built once per ``SubjectSet`` content and cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import ahocorasick
import numpy as np

from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.model import Subject, SubjectSet, normalise_term, normalise_text
from pipeline.domain.text.clean import CleanText

CACHED_MATCHERS = 4  # a worker holds the current set, and briefly the previous one during a reload


# A post has dozens of tokens and a stream's tokens repeat (a few thousand make up most of it): their
# normal form is remembered rather than computed a few dozen times a post.
_normalised_token = lru_cache(maxsize=65_536)(normalise_term)


def _is_word_char(ch: str) -> bool:
    # Latin, Cyrillic, digits...: scripts written with spaces between words. Han and kana are not.
    return ch.isalnum() and ord(ch) < 0x2E80


@dataclass(frozen=True, slots=True)
class _Compiled:
    subject: Subject
    groups: tuple[frozenset[int], ...]
    exclude: frozenset[int]
    platforms: frozenset[str] | None


class SubjectMatcher:
    """A SubjectSet compiled for matching; immutable, so one instance serves every thread."""

    def __init__(self, subjects: SubjectSet) -> None:
        self.subjects = subjects
        self.content_hash = subjects.content_hash
        self._ids: dict[str, int] = {}
        compiled = []
        for subject in subjects.subjects:
            groups = tuple(frozenset(self._id(term) for term in group) for group in subject.include)
            exclude = frozenset(self._id(term) for term in subject.exclude)
            platforms = frozenset(subject.platforms) if subject.platforms is not None else None
            compiled.append(_Compiled(subject, groups, exclude, platforms))
        self._compiled = tuple(compiled)
        self._automaton = ahocorasick.Automaton() if self._ids else None
        if self._automaton is not None:
            for key, term_id in self._ids.items():
                # Boundaries are checked only where the term itself starts/ends with a word character.
                self._automaton.add_word(key, (term_id, len(key), _is_word_char(key[0]), _is_word_char(key[-1])))
            self._automaton.make_automaton()

    def _id(self, term: str) -> int:
        return self._ids.setdefault(normalise_term(term), len(self._ids))

    def found_terms(self, pieces: Iterable[str], tokens: Iterable[str] = ()) -> set[int]:
        """Ids of the terms present in any of ``pieces`` (as bounded substrings) or among ``tokens``."""
        found: set[int] = set()
        if self._automaton is None:
            return found
        # A newline never occurs in a normalised term, so no term matches across two pieces.
        haystack = "\n".join(normalise_text(piece) for piece in pieces if piece)
        last = len(haystack) - 1
        for end, (term_id, length, bound_left, bound_right) in self._automaton.iter(haystack):
            if term_id in found:
                continue
            start = end - length + 1
            if bound_left and start > 0 and _is_word_char(haystack[start - 1]):
                continue
            if bound_right and end < last and _is_word_char(haystack[end + 1]):
                continue
            found.add(term_id)
        # A set operation rather than a loop: a post has dozens of tokens, and a loop in Python over them
        # cost more than the automaton.
        found.update(self._ids[term] for term in self._ids.keys() & map(_normalised_token, tokens))
        return found

    def match(
        self,
        clean: CleanText,
        tokens: Iterable[str] = (),
        embedding: np.ndarray | None = None,
        description_embeddings: Mapping[str, np.ndarray] | None = None,
        *,
        platform: str | None = None,
    ) -> tuple[str, ...]:
        """Names of the subjects the post is about, in the set's order; () when none."""
        if not self._compiled:
            return ()
        pieces = [clean.text, *(hop.text for hop in clean.repost_chain), *clean.hashtags, *clean.mentions]
        found = self.found_terms(pieces, tokens)
        post_vector, post_norm = _vector(embedding)
        platform_key = platform.strip().lower() if platform is not None else None
        matched = []
        for item in self._compiled:
            if item.platforms is not None and platform_key not in item.platforms:
                continue
            if item.exclude & found:
                continue
            if all(group & found for group in item.groups) or self._similar(
                item.subject, post_vector, post_norm, description_embeddings
            ):
                matched.append(item.subject.name)
        return tuple(matched)

    @staticmethod
    def _similar(
        subject: Subject,
        post_vector: np.ndarray | None,
        post_norm: float,
        description_embeddings: Mapping[str, np.ndarray] | None,
    ) -> bool:
        if post_vector is None or subject.description is None or not description_embeddings:
            return False
        described = description_embeddings.get(subject.name)
        if described is None:
            return False
        vector, norm = _vector(described)
        if vector is None:
            return False
        if vector.shape != post_vector.shape:
            raise SubjectError(
                f"embedding of subject {subject.name!r} has shape {vector.shape}, the post's {post_vector.shape}"
            )
        return float(vector @ post_vector) / (norm * post_norm) >= subject.similarity_threshold


def _vector(embedding: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """A flat float64 vector and its norm; None for a missing, zero or non-finite one (no semantic match)."""
    if embedding is None:
        return None, 0.0
    vector = np.asarray(embedding, dtype=np.float64).ravel()
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        return None, 0.0
    return vector, norm


_cache: OrderedDict[str, SubjectMatcher] = OrderedDict()
_cache_lock = threading.Lock()


def matcher_for(subjects: SubjectSet) -> SubjectMatcher:
    """The compiled matcher of a set, built once per content hash."""
    key = subjects.content_hash
    with _cache_lock:
        matcher = _cache.get(key)
        if matcher is not None:
            _cache.move_to_end(key)
            return matcher
    matcher = SubjectMatcher(subjects)  # outside the lock: compiling a large set takes milliseconds
    with _cache_lock:
        _cache[key] = matcher
        while len(_cache) > CACHED_MATCHERS:
            _cache.popitem(last=False)
    return matcher


def match_subjects(
    clean: CleanText,
    tokens: list[str],
    subjects: SubjectSet,
    embedding: np.ndarray | None = None,
    description_embeddings: dict[str, np.ndarray] | None = None,
    *,
    platform: str | None = None,
) -> tuple[str, ...]:
    """Subjects of one post (see the module docstring); ``platform`` applies subjects' platform filters."""
    return matcher_for(subjects).match(clean, tokens, embedding, description_embeddings, platform=platform)
