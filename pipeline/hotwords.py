"""Hot words: which terms drive a subject, per minute, and which are suddenly rising.

``HotWords`` is a pure accumulator of ``{(subject, minute): Counter}``: each post adds its distinct
hot-word tokens once (so one post shouting 垃圾垃圾垃圾 counts as one voice), under each of its
subjects, in its event-time minute. Memory is bounded: minutes older than ``retain_minutes``
before the newest are dropped, and a bucket with more than ``max_terms`` distinct terms keeps its
``max_terms // 2`` most frequent (the tail of one-off words goes; counts at the top stay exact
unless a term was pruned and came back).

``emerging_terms`` compares a minute against the subject's recent minutes: a Poisson z-score of the
term's count against its expected count, with a minimum count so that 3 mentions of a rare word
are not news.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from pipeline.errors import YuqingError

Bucket = tuple[str, datetime]


class HotWordsError(YuqingError, ValueError):
    """Impossible settings for the hot-word accumulator or the emerging-term test."""


def minute_of(event_time: datetime) -> datetime:
    """The UTC minute an event falls in (naive times are taken as UTC, as records do)."""
    aware = event_time.replace(tzinfo=UTC) if event_time.tzinfo is None else event_time.astimezone(UTC)
    return aware.replace(second=0, microsecond=0)


def top_terms(counts: Mapping[str, int], n: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The ``n`` most frequent terms, ties broken by the term, leaving ``exclude`` out."""
    skip = {term.casefold() for term in exclude}
    ranked = sorted(
        ((t, c) for t, c in counts.items() if c > 0 and t.casefold() not in skip), key=lambda x: (-x[1], x[0])
    )
    return ranked[: max(n, 0)]


class HotWords:
    """Per (subject, minute) term counts; not thread-safe (one per aggregating task)."""

    def __init__(self, retain_minutes: int = 120, max_terms: int = 5_000) -> None:
        if retain_minutes < 1 or max_terms < 2:
            raise HotWordsError("retain_minutes must be >= 1 and max_terms >= 2")
        self.retain = timedelta(minutes=retain_minutes)
        self.max_terms = max_terms
        self._buckets: dict[Bucket, Counter[str]] = {}
        self._newest: datetime | None = None

    @property
    def buckets(self) -> Mapping[Bucket, Counter[str]]:
        """Every retained bucket (read-only view; the counters are live)."""
        return self._buckets

    def add(self, subjects: Iterable[str], event_time: datetime, terms: Iterable[str]) -> None:
        """Count one post's terms under each of its subjects; a post older than the retention is ignored."""
        minute = minute_of(event_time)
        if self._newest is None or minute > self._newest:
            self._newest = minute
            self._expire(minute - self.retain)
        if minute < self._newest - self.retain:
            return
        distinct = {term for term in terms if term}
        if not distinct:
            return
        for subject in dict.fromkeys(subjects):
            counts = self._buckets.setdefault((subject, minute), Counter())
            counts.update(distinct)
            if len(counts) > self.max_terms:
                self._buckets[(subject, minute)] = Counter(dict(counts.most_common(self.max_terms // 2)))

    def _expire(self, oldest: datetime) -> None:
        for key in [key for key in self._buckets if key[1] < oldest]:
            del self._buckets[key]

    def counts(self, subject: str, minute: datetime) -> Counter[str]:
        """A copy of one bucket (empty when nothing was counted)."""
        return Counter(self._buckets.get((subject, minute_of(minute)), Counter()))

    def top(self, subject: str, minute: datetime, n: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
        """Top ``n`` terms of a subject in a minute; pass the subject's own terms as ``exclude``."""
        return top_terms(self._buckets.get((subject, minute_of(minute)), Counter()), n, exclude)

    def history(self, subject: str, minute: datetime, minutes: int) -> list[Counter[str]]:
        """The ``minutes`` buckets before ``minute``, oldest first; empty counters for quiet minutes."""
        end = minute_of(minute)
        return [self.counts(subject, end - timedelta(minutes=back)) for back in range(minutes, 0, -1)]

    def window(self, subject: str, end: datetime, minutes: int) -> Counter[str]:
        """Terms summed over ``minutes`` minutes ending with (and including) ``end``'s minute."""
        total: Counter[str] = Counter()
        for counts in [*self.history(subject, end, minutes - 1), self.counts(subject, end)]:
            total.update(counts)
        return total

    def drain(self, before: datetime) -> dict[Bucket, Counter[str]]:
        """Remove and return the buckets of minutes before ``before`` (closed minutes, for a sink)."""
        cutoff = minute_of(before)
        closed = {key: counts for key, counts in self._buckets.items() if key[1] < cutoff}
        for key in closed:
            del self._buckets[key]
        return closed


def emerging_terms(
    current: Mapping[str, int],
    history: Sequence[Mapping[str, int]],
    *,
    min_count: int = 5,
    min_z: float = 3.0,
    relative: bool = True,
    min_expected: float = 1.0,
) -> list[tuple[str, float]]:
    """Terms whose count in ``current`` jumps against their own baseline in ``history``, best first.

    The baseline is the term's mean per minute over ``history`` (add-half smoothed, so a word never
    seen before has a small baseline, not zero). With ``relative`` the baseline is scaled to the
    current minute's volume, so a subject that simply got busier raises nothing; every term must
    stand out against the others. The score is the Poisson z-score ``(count - expected) / sqrt(expected)``,
    with ``expected`` at least ``min_expected``. No history (or an empty one) means no baseline: [].
    """
    if min_count < 1 or min_expected <= 0 or not math.isfinite(min_z):
        raise HotWordsError("min_count must be >= 1, min_expected > 0 and min_z finite")
    minutes = len(history)
    past_total = sum(sum(minute.values()) for minute in history)
    current_total = sum(current.values())
    if minutes == 0 or past_total == 0 or current_total == 0:
        return []
    found: list[tuple[str, float]] = []
    for term, count in current.items():
        if count < min_count:
            continue
        past = sum(minute.get(term, 0) for minute in history) + 0.5
        expected = past / (past_total + 0.5) * current_total if relative else past / minutes
        expected = max(expected, min_expected)
        score = (count - expected) / math.sqrt(expected)
        if score >= min_z:
            found.append((term, round(score, 3)))
    return sorted(found, key=lambda item: (-item[1], item[0]))
