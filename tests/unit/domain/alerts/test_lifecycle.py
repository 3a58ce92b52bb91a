"""The alert lifecycle: open once, update rarely, resolve with hysteresis, cooldown, and the notification budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.baseline import Severity
from pipeline.domain.alerts.config import DetectorConfig
from pipeline.domain.alerts.detectors import Kind, Signal
from pipeline.domain.alerts.lifecycle import AlertEvent, AlertTracker, NotificationBudget, alert_id, to_record
from schemas.records import Alert

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CFG = DetectorConfig()


def at(minute: int, second: int = 0) -> datetime:
    return T0 + timedelta(minutes=minute, seconds=second)


def sig(
    minute: int,
    *,
    firing: bool = False,
    elevated: bool | None = None,
    severity: Severity = "info",
    kind: Kind = "negative_surge",
    start: int = 0,
) -> Signal:
    elevated = firing if elevated is None else elevated
    score = 5.0 if firing else 2.0 if elevated else 0.3
    return Signal(
        kind=kind,
        minute=at(minute),
        fraction=1.0,
        firing=firing,
        elevated=elevated,
        score=score,
        observed=9.0,
        expected=3.0,
        ratio=3.0,
        severity=severity,
        started_at=at(start),
        span_minutes=1.0,
        warm=True,
    )


def states(events: list[AlertEvent]) -> list[str]:
    return [e.state for e in events]


def surge_then_quiet(tracker: AlertTracker, surge_minutes: int, quiet_minutes: int, start: int = 0) -> list[AlertEvent]:
    """Partial looks every 10 s and a close at each minute's end, firing for ``surge_minutes``."""
    events: list[AlertEvent] = []
    for minute in range(start, start + surge_minutes + quiet_minutes):
        firing = minute < start + surge_minutes
        for second in range(10, 60, 10):
            events += tracker.on_evaluation(sig(minute, firing=firing, start=start), at(minute, second))
        events += tracker.on_closed_minute(sig(minute, firing=firing, start=start), at(minute + 1))
    return events


def test_one_surge_opens_once_and_resolves_after_the_quiet_minutes() -> None:
    tracker = AlertTracker("云帆", "negative_surge", CFG)
    events = surge_then_quiet(tracker, surge_minutes=5, quiet_minutes=10)
    assert states(events) == ["opened", "resolved"]
    opened, resolved = events
    assert opened.updated_at == at(0, 10) and opened.started_at == at(0)
    assert resolved.updated_at == at(5 + CFG.resolve_after_minutes)
    assert opened.alert_id == resolved.alert_id == alert_id("云帆", "negative_surge", at(0))
    assert tracker.state == "cooldown" and not tracker.is_open


def test_updates_only_when_severity_rises_or_as_a_reminder_while_elevated() -> None:
    tracker = AlertTracker("s", "negative_surge", CFG)
    assert states(tracker.on_evaluation(sig(0, firing=True), at(0, 20))) == ["opened"]
    assert tracker.on_evaluation(sig(0, firing=True), at(0, 30)) == []
    rose = tracker.on_evaluation(sig(0, firing=True, severity="warning"), at(0, 40))
    assert states(rose) == ["updated"] and rose[0].severity == "warning"
    assert tracker.on_evaluation(sig(0, firing=True, severity="info"), at(0, 50)) == []  # falling: no news
    assert tracker.on_closed_minute(sig(0, firing=True), at(1)) == []
    assert tracker.on_evaluation(sig(10, firing=True), at(10, 30)) == []  # 9 min 50 s since the last
    reminder = tracker.on_evaluation(sig(10, firing=True), at(10, 40))
    assert states(reminder) == ["updated"] and reminder[0].severity == "warning"  # the peak so far
    assert tracker.on_evaluation(sig(30, elevated=False), at(30, 10)) == []  # no reminder once it calmed down


def test_hysteresis_keeps_an_alert_open_while_elevated_and_partial_minutes_never_resolve() -> None:
    tracker = AlertTracker("s", "negative_surge", CFG)
    tracker.on_evaluation(sig(0, firing=True), at(0, 30))
    events: list[AlertEvent] = []
    for minute in range(1, 30):  # closed minutes below the open threshold, above the close threshold
        events += tracker.on_closed_minute(sig(minute, elevated=True), at(minute + 1))
        events += tracker.on_evaluation(sig(minute, elevated=False), at(minute, 30))
    assert states(events) == ["updated", "updated"] and tracker.is_open  # reminders only
    tracker.on_closed_minute(sig(30), at(31))
    tracker.on_closed_minute(sig(31), at(32))
    tracker.on_closed_minute(sig(32, elevated=True), at(33))  # the quiet count starts again
    tracker.on_closed_minute(sig(33), at(34))
    tracker.on_closed_minute(sig(34), at(35))
    assert tracker.is_open
    assert states(tracker.on_closed_minute(sig(35), at(36))) == ["resolved"]


def test_a_closed_firing_minute_opens_too() -> None:
    tracker = AlertTracker("s", "volume_burst", CFG)
    events = tracker.on_closed_minute(sig(3, firing=True, kind="volume_burst", start=2), at(4))
    assert states(events) == ["opened"] and events[0].started_at == at(2) and events[0].kind == "volume_burst"


def test_within_the_cooldown_a_new_surge_reopens_the_same_alert_and_after_it_opens_a_new_one() -> None:
    tracker = AlertTracker("s", "negative_surge", CFG)
    first = surge_then_quiet(tracker, 3, 4)  # resolved at minute 6
    assert states(first) == ["opened", "resolved"]
    again = surge_then_quiet(tracker, 2, 4, start=10)
    assert states(again) == ["opened", "resolved"]
    assert again[0].reopened and again[0].alert_id == first[0].alert_id and again[0].started_at == at(0)
    assert not first[0].reopened
    later = surge_then_quiet(tracker, 2, 4, start=40)  # more than 15 minutes after the last resolve
    assert states(later) == ["opened", "resolved"]
    assert not later[0].reopened and later[0].alert_id == alert_id("s", "negative_surge", at(40))
    assert later[0].alert_id != first[0].alert_id


def test_without_cooldown_every_surge_is_a_new_alert() -> None:
    tracker = AlertTracker("s", "negative_surge", DetectorConfig(cooldown_minutes=0))
    first = surge_then_quiet(tracker, 2, 4)
    second = surge_then_quiet(tracker, 2, 4, start=6)
    assert first[0].alert_id != second[0].alert_id and not second[0].reopened


def test_the_budget_is_shared_by_a_subjects_kinds_and_counts_what_it_suppresses() -> None:
    config = DetectorConfig(max_notifications_per_hour=2)
    budget = NotificationBudget(config.max_notifications_per_hour)
    surge = AlertTracker("s", "negative_surge", config, budget)
    burst = AlertTracker("s", "volume_burst", config, budget)
    flip = AlertTracker("s", "sentiment_flip", config, budget)
    assert states(surge.on_evaluation(sig(0, firing=True, start=0), at(0, 20))) == ["opened"]
    assert states(burst.on_evaluation(sig(0, firing=True, kind="volume_burst"), at(0, 20))) == ["opened"]
    assert flip.on_evaluation(sig(0, firing=True, kind="sentiment_flip"), at(0, 20)) == []  # over budget
    assert surge.on_evaluation(sig(0, firing=True, severity="critical"), at(0, 30)) == []
    assert budget.suppressed == 2 and flip.is_open
    # an hour later the budget has room: the flip's first event is an "opened", since nobody heard of it
    event = flip.on_evaluation(sig(61, firing=True, kind="sentiment_flip", severity="warning"), at(61, 20))
    assert states(event) == ["opened"] and event[0].started_at == at(0)
    # resolves of announced alerts always go out, whatever the budget
    budget.take(at(61, 30))
    quiet = [surge.on_closed_minute(sig(m), at(m + 1)) for m in range(61, 61 + CFG.resolve_after_minutes)]
    assert states(quiet[-1]) == ["resolved"] and quiet[-1][0].severity == "critical"


def test_an_alert_never_announced_resolves_silently() -> None:
    budget = NotificationBudget(1)
    budget.take(at(0))
    tracker = AlertTracker("s", "negative_surge", CFG, budget)
    events = surge_then_quiet(tracker, 2, 5)
    assert events == [] and tracker.state == "cooldown" and budget.suppressed >= 1


def test_budget_is_a_sliding_hour() -> None:
    budget = NotificationBudget(2)
    assert budget.take(at(0)) and budget.take(at(30))
    assert not budget.take(at(59, 59))
    assert budget.take(at(60)) and not budget.take(at(61))
    assert budget.suppressed == 2
    with pytest.raises(AlertError):
        NotificationBudget(0)


def test_alert_ids_are_short_deterministic_hex() -> None:
    first = alert_id("云帆", "negative_surge", at(0))
    assert first == alert_id("云帆", "negative_surge", at(0, 42))  # the start minute, not the second
    assert len(first) == 16 and int(first, 16) >= 0
    assert len({first, alert_id("云帆", "volume_burst", at(0)), alert_id("云帆", "negative_surge", at(1))}) == 3


def test_a_tracker_takes_only_its_own_kind() -> None:
    with pytest.raises(AlertError, match="got a volume_burst signal"):
        AlertTracker("s", "negative_surge", CFG).on_evaluation(sig(0, kind="volume_burst"), at(0))


def test_to_record_builds_the_alert_record_with_evidence() -> None:
    tracker = AlertTracker("云帆", "negative_surge", CFG)
    event = tracker.on_evaluation(sig(5, firing=True, severity="warning", start=4), datetime(2025, 3, 1, 8, 5, 30))
    record = to_record(event[0], {"top_posts": ["p1", "p2"], "score": "overridden by the caller"})
    assert isinstance(record, Alert)
    assert record.id == event[0].alert_id and record.subject == "云帆" and record.kind == "negative_surge"
    assert record.state == "opened" and record.severity == "warning"
    assert record.started_at == at(4) and record.updated_at == at(5, 30)
    assert record.evidence["top_posts"] == ["p1", "p2"] and record.evidence["score"] == "overridden by the caller"
    assert record.evidence["expected"] == 3.0 and record.evidence["reopened"] is False
    assert Alert.model_validate_json(record.model_dump_json()) == record
    assert to_record(event[0]).evidence["score"] == 5.0
