"""Minute counts, the event-time gate, the shared statistics and the three detectors, minute by minute."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.baseline import Ewma, poisson_z, severity_of, share_z
from pipeline.domain.alerts.config import DetectorConfig
from pipeline.domain.alerts.detectors import (
    NegativeSurgeDetector,
    SentimentFlipDetector,
    Signal,
    VolumeBurstDetector,
    make_detectors,
)
from pipeline.domain.alerts.series import EventTimeGate, MinuteCounts, floor_minute

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CFG = DetectorConfig()
READY = CFG.warmup_minutes + CFG.guard_minutes  # closed minutes before a detector may fire


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def mc(minute: int, total: int, negative: int = 0, positive: int = 0) -> MinuteCounts:
    return MinuteCounts(at(minute), total, negative, total - negative - positive, positive)


class Feed:
    """Closes consecutive minutes on a detector and remembers where it is."""

    def __init__(self, detector: NegativeSurgeDetector | VolumeBurstDetector | SentimentFlipDetector) -> None:
        self.detector = detector
        self.minute = 0

    def close(self, rows: Iterable[tuple[int, int, int]]) -> list[Signal]:
        signals = []
        for total, negative, positive in rows:
            signals.append(self.detector.close_minute(mc(self.minute, total, negative, positive)))
            self.minute += 1
        return signals

    def steady(self, minutes: int, total: int, negative: int, positive: int = 0) -> list[Signal]:
        return self.close([(total, negative, positive)] * minutes)

    def peek(self, total: int, negative: int, positive: int = 0, fraction: float = 1.0) -> Signal:
        return self.detector.evaluate(mc(self.minute, total, negative, positive), fraction)


# -- minute counts and the event-time gate ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": -1},
        {"total": 3, "negative": 2, "positive": 2},
        {"total": 10**10},
        {"total": True},
        {"total": 1.5},
    ],
)
def test_impossible_counts_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(AlertError):
        MinuteCounts(minute=T0, **kwargs)


def test_minute_must_be_whole_and_is_kept_in_utc() -> None:
    with pytest.raises(AlertError, match="whole minute"):
        MinuteCounts(T0 + timedelta(seconds=5), 1)
    naive = MinuteCounts(datetime(2025, 3, 1, 8, 0), 4, 1, 1, 1)
    assert naive.minute == T0 and naive.minute.tzinfo is UTC
    assert floor_minute(datetime(2025, 3, 1, 16, 0, 59, tzinfo=UTC).astimezone()) == T0.replace(hour=16)


def test_shares() -> None:
    counts = MinuteCounts(T0, total=10, negative=3, positive=5)  # two unknown
    assert counts.negative_share == 0.3 and counts.positive_share == 0.5
    assert MinuteCounts.empty(T0).negative_share == 0.0 == MinuteCounts.empty(T0).positive_share


def test_event_time_gate() -> None:
    gate = EventTimeGate()
    now = T0 + timedelta(seconds=30)
    assert gate.check(now, now) is None
    assert gate.check(now + timedelta(seconds=120), now) is None
    assert gate.check(now + timedelta(seconds=121), now) == "too_far_future"
    assert gate.check(now - timedelta(minutes=15), now) is None
    assert gate.check(now - timedelta(minutes=15, seconds=1), now) == "too_late"
    assert gate.check(datetime(2025, 3, 1, 8, 0, 30), now) is None  # naive is UTC
    assert EventTimeGate(future_tolerance_s=0, max_lateness_s=60).check(now - timedelta(seconds=61), now) == "too_late"
    with pytest.raises(AlertError):
        EventTimeGate(max_lateness_s=0)


# -- shared statistics -----------------------------------------------------------------------------


def test_poisson_z_is_calibrated_at_small_counts() -> None:
    assert poisson_z(3, 3) == 0.0
    assert poisson_z(11, 3) == pytest.approx(3.55, abs=0.01)  # exact tail: 3.44; (x - λ)/√λ would say 4.62
    assert poisson_z(0, 3) == pytest.approx(-math.sqrt(6))
    assert poisson_z(1, 3) < 0 < poisson_z(5, 3)
    assert poisson_z(11, 3, dispersion=4.0) == pytest.approx(poisson_z(11, 3) / 2)
    with pytest.raises(AlertError):
        poisson_z(1, 0)


def test_share_z() -> None:
    assert share_z(0, 0, 0.2) == 0.0
    assert share_z(50, 100, 0.5) == 0.0
    assert share_z(60, 100, 0.5) == pytest.approx(2.0)
    assert math.isfinite(share_z(10, 10, 0.0))  # baseline share clamped away from 0


def test_ewma_is_a_running_mean_at_first_then_forgets_with_its_half_life() -> None:
    ewma = Ewma(CFG.alpha)
    for value in (2, 4, 6):
        ewma.update(value)
    assert ewma.mean == pytest.approx(4.0) and ewma.var == pytest.approx(8 / 3)
    assert ewma.effective_minutes == 3
    for _ in range(500):
        ewma.update(10)
    assert ewma.mean == pytest.approx(10.0, abs=1e-3)
    assert ewma.effective_minutes == pytest.approx((2 - CFG.alpha) / CFG.alpha)
    slow = Ewma(CFG.alpha, minutes=100, mean=10.0, var=10.0)
    slow.update(100, weight=0.05, learn_variance=False)
    assert slow.mean == pytest.approx(10 + 90 * CFG.alpha * 0.05) and slow.var == 10.0
    with pytest.raises(AlertError):
        Ewma(0.0)


def test_severity_needs_both_score_and_ratio() -> None:
    assert severity_of(50.0, 1.5, CFG) == "info"  # very sure of a small change
    assert severity_of(4.5, 8.0, CFG) == "info"  # a big change on little evidence
    assert severity_of(7.0, 3.5, CFG) == "warning"
    assert severity_of(12.0, 6.0, CFG) == "critical"


# -- negative surge ---------------------------------------------------------------------------------


def test_nothing_fires_before_the_baseline_is_warm() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.steady(READY - 1, 20, 3)
    surge = feed.peek(200, 150)
    assert not surge.warm and not surge.firing and surge.score > CFG.open_z
    feed.steady(1, 20, 3)
    assert feed.peek(200, 150).firing


def test_a_steady_baseline_scores_zero() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    signals = feed.steady(60, 20, 3, 12)
    assert all(not s.firing and not s.elevated and s.score == 0.0 for s in signals[READY:])
    assert feed.peek(20, 3, 12).expected == pytest.approx(3.0)


def test_quiet_baseline_small_surge_below_min_volume_does_not_fire_but_a_large_one_does() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.close([(2, 1, 1), (2, 0, 2), (2, 0, 1)] * 20)  # 2 posts a minute, one negative in three minutes
    small = feed.close([(3, 1, 1)] * 5)  # negatives tripled, but one a minute
    assert not any(s.firing for s in small)
    large = feed.peek(25, 20, 2, fraction=0.5)
    assert large.firing and large.observed == 20 and large.expected == pytest.approx(0.5 * CFG.min_rate)


def test_min_negatives_applies_to_the_partial_minute_as_counted() -> None:
    feed = Feed(NegativeSurgeDetector(CFG.model_copy(update={"min_negatives": 8})))
    feed.steady(30, 20, 1, 15)
    assert not feed.peek(8, 7, 1, fraction=0.2).firing
    assert feed.peek(9, 8, 1, fraction=0.2).firing


def test_a_positive_burst_is_not_a_negative_surge() -> None:
    surge, burst = NegativeSurgeDetector(CFG), VolumeBurstDetector(CFG)
    feeds = [Feed(surge), Feed(burst)]
    for feed in feeds:
        feed.steady(30, 20, 3, 12)
    launch = [feed.peek(150, 8, 130) for feed in feeds]  # five negatives more, but a far smaller share
    assert not launch[0].firing and launch[1].firing
    viral = [feed.peek(200, 30, 150) for feed in feeds]  # ten times the volume, the same negative share
    assert viral[0].ratio >= CFG.min_ratio and not viral[0].firing and viral[1].firing


def test_the_partial_minute_is_judged_against_a_scaled_floored_expectation() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.steady(30, 40, 6, 20)
    early, floor, half = (feed.peek(14, 10, 2, fraction=f) for f in (0.05, CFG.partial_floor, 0.5))
    assert early.expected == floor.expected == pytest.approx(6 * CFG.partial_floor)
    assert early.score == floor.score > half.score
    assert half.expected == pytest.approx(3.0) and half.fraction == 0.5
    assert early.firing and not feed.peek(14, 10, 2, fraction=1.0).firing  # a burst early, normal for a minute


def test_evaluating_changes_no_state() -> None:
    a, b = NegativeSurgeDetector(CFG), NegativeSurgeDetector(CFG)
    fa, fb = Feed(a), Feed(b)
    for feed in (fa, fb):
        feed.steady(20, 20, 3, 12)
    first = fa.peek(30, 12, 5, fraction=0.5)
    assert fa.peek(30, 12, 5, fraction=0.5) == first
    assert fa.close([(30, 12, 5)]) == fb.close([(30, 12, 5)])
    assert a.baseline == b.baseline


def test_the_window_catches_a_sustained_surge_too_modest_for_one_minute() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.steady(30, 20, 3, 12)
    signals = feed.close([(26, 9, 12)] * 3)  # negatives tripled: 9 a minute where 3 are usual
    assert [s.firing for s in signals] == [False, False, True]
    assert poisson_z(9, 3) < CFG.open_z  # one such minute alone is not enough
    assert signals[2].span_minutes == 3 and signals[2].observed == 27
    assert signals[2].started_at == at(30)  # the first minute above the baseline


def test_started_at_is_the_first_minute_of_the_run_above_the_baseline() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.steady(30, 20, 3, 12)
    feed.close([(22, 6, 12), (20, 3, 12), (22, 6, 12), (23, 7, 12)])  # above, back to normal, then above twice
    signal = feed.peek(60, 40, 12, fraction=0.5)
    assert signal.firing and signal.started_at == at(32)


def test_a_long_surge_does_not_become_the_baseline() -> None:
    detector = NegativeSurgeDetector(CFG)
    feed = Feed(detector)
    feed.steady(60, 100, 15, 60)
    surge = feed.steady(120, 130, 45, 60)  # two hours at three times the negatives
    assert all(s.firing for s in surge[1:]) and detector.in_episode
    assert detector.baseline.mean < 15 + 0.2 * 30
    assert detector.baseline.var == pytest.approx(0.0)  # frozen during the surge
    after = feed.steady(30, 100, 15, 60)
    assert not detector.in_episode and not after[-1].elevated


def test_a_surge_seen_only_after_the_guard_still_spares_the_baseline() -> None:
    detector = NegativeSurgeDetector(CFG)
    feed = Feed(detector)
    feed.steady(60, 100, 15, 60)
    mean = detector.baseline.mean
    feed.steady(CFG.guard_minutes, 130, 45, 60)
    assert detector.baseline.mean == mean  # the surge minutes are still held back
    feed.steady(10, 130, 45, 60)
    assert detector.baseline.mean < mean + 1


# -- volume burst and sentiment flip ----------------------------------------------------------------


def test_volume_burst_needs_a_large_absolute_and_relative_jump() -> None:
    feed = Feed(VolumeBurstDetector(CFG))
    feed.steady(30, 5, 1, 3)
    assert not feed.peek(25, 5, 15).firing  # five times the volume, but below burst_min_total
    assert feed.peek(60, 10, 40).firing
    busy = Feed(VolumeBurstDetector(CFG))
    busy.steady(30, 1000, 150, 600)
    assert not busy.peek(1500, 200, 900).firing  # very unlikely, but only 1.5 times the volume


def test_sentiment_flip_on_a_positive_subject() -> None:
    detector = SentimentFlipDetector(CFG)
    feed = Feed(detector)
    feed.steady(30, 40, 6, 28)
    flipped = feed.close([(40, 30, 4)] * 3)
    assert [s.firing for s in flipped] == [False, True, True]  # the window needs a majority first
    assert flipped[1].observed == pytest.approx(66 / 120)
    assert flipped[2].expected == pytest.approx(6 / 40)
    assert flipped[2].started_at == at(30)


def test_no_flip_for_a_subject_usually_criticised_or_with_too_few_posts() -> None:
    criticised = Feed(SentimentFlipDetector(CFG))
    criticised.steady(30, 40, 24, 10)
    assert not any(s.firing for s in criticised.close([(40, 36, 2)] * 5))
    small = Feed(SentimentFlipDetector(CFG))
    small.steady(30, 4, 0, 3)
    assert not any(s.firing for s in small.close([(4, 4, 0)] * 5))  # 12 posts in the window


# -- contracts --------------------------------------------------------------------------------------


def test_minutes_must_follow_each_other() -> None:
    detector = NegativeSurgeDetector(CFG)
    detector.close_minute(mc(0, 1))
    with pytest.raises(AlertError, match="does not follow"):
        detector.close_minute(mc(2, 1))
    with pytest.raises(AlertError, match="does not follow"):
        detector.evaluate(mc(0, 1), 0.5)
    with pytest.raises(AlertError, match="fraction"):
        detector.evaluate(mc(1, 1), math.nan)


def test_make_detectors_gives_one_of_each_kind() -> None:
    assert [d.kind for d in make_detectors(CFG)] == ["negative_surge", "volume_burst", "sentiment_flip"]


@st.composite
def minute_rows(draw: st.DrawFn) -> list[tuple[int, int, int, int, float]]:
    """(negative, neutral, positive, unknown, fraction of a partial look) per minute, small or huge."""
    part = st.one_of(st.integers(0, 30), st.integers(0, 250_000_000))
    row = st.tuples(part, part, part, part, st.floats(-1.0, 2.0))
    return draw(st.lists(row, min_size=1, max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=minute_rows(), warmup=st.integers(1, 5), guard=st.integers(0, 3), window=st.integers(1, 4))
def test_any_counts_give_finite_signals(
    rows: list[tuple[int, int, int, int, float]], warmup: int, guard: int, window: int
) -> None:
    config = DetectorConfig(warmup_minutes=warmup, guard_minutes=guard, window_minutes=window)
    detectors = make_detectors(config)
    for minute, (negative, neutral, positive, unknown, fraction) in enumerate(rows):
        counts = MinuteCounts(at(minute), negative + neutral + positive + unknown, negative, neutral, positive)
        for detector in detectors:
            for signal in (detector.evaluate(counts, fraction), detector.close_minute(counts)):
                numbers = (signal.score, signal.observed, signal.expected, signal.ratio)
                assert all(math.isfinite(x) for x in numbers), signal
                assert not signal.firing or signal.score >= 0


def test_a_busy_hour_is_not_a_negative_surge_unless_the_share_rises_surely() -> None:
    feed = Feed(NegativeSurgeDetector(CFG))
    feed.steady(30, 120, 18, 40)  # 15% negative
    # A quarter into a minute of a busy hour: three times the posts, the negatives with them, and the
    # share a little up by chance (20%): the counts alone would fire, the share's rise is not sure.
    busy = feed.peek(90, 18, 20, fraction=0.25)
    assert busy.score >= CFG.open_z and busy.ratio >= CFG.min_ratio and 0.15 + CFG.min_share_lift <= 18 / 90
    assert not busy.firing
    ungated = Feed(NegativeSurgeDetector(CFG.model_copy(update={"min_share_z": 0.0})))
    ungated.steady(30, 120, 18, 40)
    assert ungated.peek(90, 18, 20, fraction=0.25).firing  # what the share test is there to stop
    surge = feed.peek(60, 27, 10, fraction=0.25)  # fewer posts, but 45% of them negative
    assert surge.firing
