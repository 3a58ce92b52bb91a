"""Hot words: which terms drive a subject, and which are suddenly rising.

The live store counts each post's distinct hot-word terms once (one post shouting 垃圾垃圾垃圾 is one
voice) per subject and event-time minute (``RedisSink``); these functions rank what it counted.

``emerging_terms`` compares a minute against the subject's recent minutes: a Poisson z-score of the
term's count against its expected count, with a minimum count so that 3 mentions of a rare word
are not news.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pipeline.errors import YuqingError


class HotWordsError(YuqingError, ValueError):
    """Impossible settings for the emerging-term test."""


def top_terms(counts: Mapping[str, int], n: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The ``n`` most frequent terms, ties broken by the term, leaving ``exclude`` out."""
    skip = {term.casefold() for term in exclude}
    ranked = sorted(
        ((t, c) for t, c in counts.items() if c > 0 and t.casefold() not in skip), key=lambda x: (-x[1], x[0])
    )
    return ranked[: max(n, 0)]


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
