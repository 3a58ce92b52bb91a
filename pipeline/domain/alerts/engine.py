"""``DetectionEngine``: every subject's detectors and alert trackers, fed minute by minute, bounded.

The aggregating task owns one engine and calls, with times it read itself (the engine reads no clock):
- ``evaluate(subject, partial, now)`` every few seconds with the counts of the minute still filling;
- ``observe_minute(subject, counts)`` once a minute has closed, with its final counts;
- ``advance(now)`` about once a minute, which closes the minutes before ``now``'s for every subject
  that got no final counts (a subject nobody talks about any more must still see quiet minutes, or
  its open alerts would never resolve and its baseline would never fall).

A minute never observed is closed with the last partial counts seen for it, or as an empty minute if
none were; a minute already closed is never folded again (late corrections are dropped and counted
in ``stats["stale"]``: a smoothed baseline does not need them). Gaps are filled minute by minute.

Memory is bounded: a subject with no posts for ``idle_minutes`` is dropped (its state is stale; it
warms up again if it comes back), and beyond ``max_subjects`` the least recently active subject is
dropped, one without an open alert if any of the oldest few qualifies. Everything is deterministic:
the same calls give the same events.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.config import AlertsConfig, DetectorConfig
from pipeline.domain.alerts.detectors import Detector, make_detectors
from pipeline.domain.alerts.lifecycle import AlertEvent, AlertTracker, NotificationBudget
from pipeline.domain.alerts.series import MinuteCounts, as_utc, floor_minute

MINUTE = timedelta(minutes=1)
EVICTION_SCAN = 32


@dataclass(slots=True)
class _Subject:
    config: DetectorConfig
    detectors: tuple[Detector, ...]
    trackers: tuple[AlertTracker, ...]
    budget: NotificationBudget
    next_minute: datetime  # the first minute not closed yet
    last_active: datetime  # the latest minute with posts
    partial: MinuteCounts | None = None

    @property
    def has_open_alert(self) -> bool:
        return any(tracker.is_open for tracker in self.trackers)


class DetectionEngine:
    """Per-subject detection state for many subjects; not thread-safe (one per aggregating task)."""

    def __init__(
        self, config: AlertsConfig | None = None, *, max_subjects: int = 10_000, idle_minutes: int = 180
    ) -> None:
        if max_subjects < 1 or idle_minutes < 1:
            raise AlertError("max_subjects and idle_minutes must be >= 1")
        self.config = config if config is not None else AlertsConfig()
        self.max_subjects = max_subjects
        self.idle = timedelta(minutes=idle_minutes)
        self._subjects: OrderedDict[str, _Subject] = OrderedDict()  # least recently active first
        self.stats: dict[str, int] = {"stale": 0, "dropped_idle": 0, "evicted": 0, "evicted_open": 0, "suppressed": 0}

    def __contains__(self, subject: object) -> bool:
        return subject in self._subjects

    def __len__(self) -> int:
        return len(self._subjects)

    @property
    def suppressed(self) -> int:
        """Notifications suppressed by the per-subject budgets, dropped subjects included."""
        return self.stats["suppressed"] + sum(s.budget.suppressed for s in self._subjects.values())

    def open_alerts(self) -> list[tuple[str, str, str]]:
        """``(subject, kind, alert id)`` of every open alert."""
        return [
            (name, t.kind, t.alert_id or "")
            for name, state in self._subjects.items()
            for t in state.trackers
            if t.is_open
        ]

    def observe_minute(self, subject: str, counts: MinuteCounts) -> list[AlertEvent]:
        """Fold a closed minute in (earlier unclosed minutes first); a minute already closed is ignored."""
        state, events = self._prepare(subject, counts)
        if state is None:
            return events
        events += self._close(subject, state, counts)
        return events

    def evaluate(self, subject: str, partial: MinuteCounts, now: datetime) -> list[AlertEvent]:
        """Judge the minute still filling at ``now``; earlier unclosed minutes are closed first."""
        now = as_utc(now)
        state, events = self._prepare(subject, partial)
        if state is None:
            return events
        state.partial = partial
        fraction = min(max((now - partial.minute) / MINUTE, 0.0), 1.0)
        for detector, tracker in zip(state.detectors, state.trackers, strict=True):
            events += tracker.on_evaluation(detector.evaluate(partial, fraction), now)
        return events

    def advance(self, now: datetime) -> list[AlertEvent]:
        """Close, for every subject, the minutes before ``now``'s minute; drop subjects idle too long."""
        current = floor_minute(now)
        events: list[AlertEvent] = []
        for name in list(self._subjects):
            state = self._subjects[name]
            if current - state.last_active > self.idle:
                self._drop(name, "dropped_idle")
                continue
            events += self._fill(name, state, current)
        return events

    def _prepare(self, subject: str, counts: MinuteCounts) -> tuple[_Subject | None, list[AlertEvent]]:
        """The subject's state, brought up to ``counts.minute``; None when that minute is already closed."""
        if not subject:
            raise AlertError("subject must not be empty")
        state = self._subjects.get(subject)
        if state is not None and counts.minute - state.next_minute > self.idle:
            self._drop(subject, "dropped_idle")  # back after a long silence: its baseline is stale
            state = None
        if state is None:
            state = self._create(subject, counts.minute)
        if counts.minute < state.next_minute:
            self.stats["stale"] += 1
            return None, []
        if counts.total:
            state.last_active = max(state.last_active, counts.minute)
            self._subjects.move_to_end(subject)
        return state, self._fill(subject, state, counts.minute)

    def _fill(self, subject: str, state: _Subject, until: datetime) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        while state.next_minute < until:
            minute = state.next_minute
            known = state.partial if state.partial is not None and state.partial.minute == minute else None
            events += self._close(subject, state, known or MinuteCounts.empty(minute))
        return events

    def _close(self, subject: str, state: _Subject, counts: MinuteCounts) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        end = counts.minute + MINUTE
        for detector, tracker in zip(state.detectors, state.trackers, strict=True):
            events += tracker.on_closed_minute(detector.close_minute(counts), end)
        state.next_minute, state.partial = end, None
        return events

    def _create(self, subject: str, minute: datetime) -> _Subject:
        while len(self._subjects) >= self.max_subjects:
            self._evict()
        config = self.config.for_subject(subject)
        budget = NotificationBudget(config.max_notifications_per_hour)
        detectors = make_detectors(config)
        state = _Subject(
            config=config,
            detectors=detectors,
            trackers=tuple(AlertTracker(subject, d.kind, config, budget) for d in detectors),
            budget=budget,
            next_minute=minute,
            last_active=minute,
        )
        self._subjects[subject] = state
        return state

    def _evict(self) -> None:
        oldest = list(islice(self._subjects.items(), EVICTION_SCAN))
        quiet = [name for name, state in oldest if not state.has_open_alert]
        if quiet:
            self._drop(quiet[0], "evicted")
        else:
            self._drop(oldest[0][0], "evicted_open")

    def _drop(self, subject: str, reason: str) -> None:
        state = self._subjects.pop(subject)
        self.stats[reason] += 1
        self.stats["suppressed"] += state.budget.suppressed
