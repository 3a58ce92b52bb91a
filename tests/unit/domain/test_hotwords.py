"""Top terms, and terms emerging against their own baseline (the live store counts them per minute)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.hotwords import HotWordsError, emerging_terms, top_terms

T0 = datetime(2025, 3, 1, 8, 0, 12, tzinfo=UTC)
MINUTE = T0.replace(second=0)


def test_top_terms_are_deterministic() -> None:
    assert top_terms({"b": 2, "a": 2, "c": 5, "d": 0}, 10) == [("c", 5), ("a", 2), ("b", 2)]
    assert top_terms({"a": 1}, 0) == []


def history_of(minutes: int = 10) -> list[Counter[str]]:
    return [Counter({"电池": 10, "价格": 5, "客服": 3}) for _ in range(minutes)]


def test_a_jumping_term_emerges_and_steady_ones_do_not() -> None:
    current = Counter({"电池": 11, "价格": 5, "客服": 4, "爆炸": 9})
    assert [term for term, _ in emerging_terms(current, history_of())] == ["爆炸"]
    assert emerging_terms(Counter({"电池": 10, "价格": 6, "客服": 3}), history_of()) == []


def test_a_busier_subject_raises_nothing_unless_asked_for_absolute_rates() -> None:
    doubled = Counter({"电池": 20, "价格": 10, "客服": 6})
    assert emerging_terms(doubled, history_of()) == []
    assert [t for t, _ in emerging_terms(doubled, history_of(), relative=False)] == ["电池"]


def test_minimum_count_and_no_baseline() -> None:
    assert emerging_terms(Counter({"罕见": 3}), history_of()) == []
    assert emerging_terms(Counter({"罕见": 3}), history_of(), min_count=3) == []  # z = 2 against a floor of 1
    assert emerging_terms(Counter({"罕见": 3}), history_of(), min_count=3, min_z=1.5) == [("罕见", 2.0)]
    assert emerging_terms(Counter({"爆炸": 50}), []) == []
    assert emerging_terms(Counter({"爆炸": 50}), [Counter()]) == []
    assert emerging_terms(Counter(), history_of()) == []
    with pytest.raises(HotWordsError):
        emerging_terms(Counter(), [], min_count=0)


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(st.sampled_from(list("abcdefgh")), st.integers(0, 50), max_size=8),
    st.lists(st.dictionaries(st.sampled_from(list("abcdefgh")), st.integers(0, 50), max_size=8), max_size=10),
)
def test_emerging_terms_are_sorted_and_pass_the_thresholds(current: dict[str, int], past: list[dict[str, int]]) -> None:
    found = emerging_terms(Counter(current), [Counter(minute) for minute in past], min_count=5, min_z=2.0)
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    assert all(current[term] >= 5 and score >= 2.0 for term, score in found)
