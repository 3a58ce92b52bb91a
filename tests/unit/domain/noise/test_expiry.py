"""Event-time expiry of the noise state: everything out of the window goes, in time order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.domain.noise.bursts import AuthorBursts, FloodTracker
from pipeline.domain.noise.dedup import NearDuplicateIndex
from pipeline.domain.noise.expiry import Expiry

SLOGAN = "云帆手机这次真的让人失望透了，大家千万别买！"
OTHER = "星河乳业的新品酸奶口感一般，价格偏贵"


def test_expired_keys_go_in_time_order_and_ties_by_key() -> None:
    expiry: Expiry[str] = Expiry()
    for key, t in [("b", 5.0), ("a", 5.0), ("c", 1.0), ("d", 9.0)]:
        expiry.set(key, t)
    expiry.set("c", 7.0)  # touched: no longer among the oldest
    assert expiry.expired(6.0) == ["a", "b"]
    assert expiry.pop_oldest() == "c"
    assert len(expiry) == 1 and expiry.expired(100.0) == ["d"]


def test_a_time_may_go_down() -> None:
    expiry: Expiry[int] = Expiry()
    expiry.set(1, 50.0)
    expiry.set(1, 10.0)
    assert expiry.expired(20.0) == [1]


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100)), max_size=200))
def test_expired_is_every_key_under_the_cutoff(changes: list[tuple[int, float]]) -> None:
    expiry: Expiry[int] = Expiry()
    latest: dict[int, float] = {}
    for key, t in changes:
        expiry.set(key, t)
        latest[key] = t
        assert len(expiry._heap) <= 2 * len(latest) + 65  # skipped items do not pile up
    assert sorted(expiry.expired(50.0)) == sorted(k for k, t in latest.items() if t < 50.0)
    assert len(expiry) == sum(t >= 50.0 for t in latest.values())


def test_state_behind_fresher_state_is_evicted_too() -> None:
    """Out-of-order events: an entry last matched long ago goes even when a fresher one was
    created before it (a least-recently-used order would keep it behind the fresher one)."""
    index = NearDuplicateIndex(window_s=60)
    index.assign("fresh", OTHER, 100.0)
    index.assign("late", SLOGAN, 50.0)  # a late post, still within the window
    assert len(index) == 2
    index.assign("next", "今天天气很好，我们去公园散步了，心情不错", 111.0)  # 50 is now out of it
    assert len(index) == 2 and index.assign("copy", SLOGAN, 112.0).cluster_id == "copy"
    index.assign("older", "极光汽车的售后服务态度很好，点赞", 10.0)  # later than the window: judged, kept nowhere
    assert len(index) == 3
    floods = FloodTracker(window_s=10, sticky_s=0)
    floods.observe("fresh", "a", 100.0)
    floods.observe("late", "a", 95.0)
    floods.observe("fresh", "a", 106.0)
    assert len(floods) == 1
    bursts = AuthorBursts(window_s=10)
    bursts.observe("fresh", 100.0)
    bursts.observe("late", 95.0)
    bursts.observe("fresh", 106.0)
    assert len(bursts) == 1
