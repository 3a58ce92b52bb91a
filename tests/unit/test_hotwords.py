"""Hot words per subject and minute, and terms emerging against their own baseline."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.hotwords import HotWords, HotWordsError, emerging_terms, minute_of, top_terms

T0 = datetime(2025, 3, 1, 8, 0, 12, tzinfo=UTC)
MINUTE = T0.replace(second=0)


def test_minute_buckets_in_utc() -> None:
    assert minute_of(T0) == MINUTE
    assert minute_of(datetime(2025, 3, 1, 16, 0, 59, tzinfo=UTC).astimezone()) == MINUTE.replace(hour=16)
    assert minute_of(datetime(2025, 3, 1, 8, 0, 30)) == MINUTE


def test_each_post_counts_a_term_once_under_each_subject() -> None:
    hot = HotWords()
    hot.add(["云帆", "手机", "云帆"], T0, ["垃圾", "垃圾", "垃圾", "电池"])
    hot.add(["云帆"], T0 + timedelta(seconds=5), ["电池", "发热", ""])
    hot.add(["云帆"], T0 + timedelta(minutes=1), ["客服"])
    assert hot.counts("云帆", T0) == Counter({"电池": 2, "垃圾": 1, "发热": 1})
    assert hot.counts("手机", T0) == Counter({"垃圾": 1, "电池": 1})
    assert set(hot.buckets) == {("云帆", MINUTE), ("手机", MINUTE), ("云帆", MINUTE + timedelta(minutes=1))}
    assert hot.top("云帆", T0, 2) == [("电池", 2), ("发热", 1)]
    assert hot.top("云帆", T0, 5, exclude=["电池"]) == [("发热", 1), ("垃圾", 1)]
    assert hot.window("云帆", T0 + timedelta(minutes=1), 2) == Counter({"电池": 2, "垃圾": 1, "发热": 1, "客服": 1})
    past = hot.history("云帆", T0 + timedelta(minutes=2), 3)
    assert past == [Counter(), hot.counts("云帆", T0), Counter({"客服": 1})]


def test_top_terms_are_deterministic() -> None:
    assert top_terms({"b": 2, "a": 2, "c": 5, "d": 0}, 10) == [("c", 5), ("a", 2), ("b", 2)]
    assert top_terms({"a": 1}, 0) == []


def test_old_minutes_expire_and_late_posts_are_ignored() -> None:
    hot = HotWords(retain_minutes=10)
    hot.add(["s"], T0, ["旧"])
    hot.add(["s"], T0 + timedelta(minutes=30), ["新"])
    assert ("s", MINUTE) not in hot.buckets
    hot.add(["s"], T0, ["迟到"])
    assert ("s", MINUTE) not in hot.buckets


def test_a_bucket_is_pruned_to_its_top_terms() -> None:
    hot = HotWords(max_terms=10)
    hot.add(["s"], T0, ["常见"])
    for n in range(30):
        hot.add(["s"], T0, ["常见", f"词{n}"])
    assert len(hot.counts("s", T0)) <= 10
    assert hot.top("s", T0, 1) == [("常见", 31)]


def test_drain_returns_closed_minutes() -> None:
    hot = HotWords()
    hot.add(["s"], T0, ["a1"])
    hot.add(["s"], T0 + timedelta(minutes=1), ["b1"])
    closed = hot.drain(T0 + timedelta(minutes=1))
    assert closed == {("s", MINUTE): Counter({"a1": 1})}
    assert list(hot.buckets) == [("s", MINUTE + timedelta(minutes=1))]


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
    with pytest.raises(HotWordsError):
        HotWords(retain_minutes=0)


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
