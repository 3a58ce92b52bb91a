"""An alert's life: quiet → open → (updated) → resolved, as data, with hysteresis, cooldown and a budget.

Detectors say, minute by minute, whether a subject looks like a surge; people want to hear about it
once, hear again only when it matters, and hear when it is over. ``AlertTracker`` (one per subject
and kind) turns the signals into ``AlertEvent`` values:

- **opened** on the first firing signal (a partial minute is enough). The alert id is a short SHA-1
  of subject, kind and the minute the surge started, so a replay of the same data gives the same id.
- **updated** only when the peak severity rises, or every ``update_every_minutes`` as a reminder
  while the score is still elevated: never on every evaluation. Events carry the peak severity.
- **resolved** after ``resolve_after_minutes`` consecutive *closed* minutes below the close
  threshold (hysteresis: an open alert stays open while the score is at least ``close_z``, well below
  ``open_z``, so a surge wobbling around the open threshold does not flap). Partial minutes never
  resolve anything: a minute's first seconds say little.
- **cooldown**: for ``cooldown_minutes`` after a resolve, a firing signal *reopens the same alert*
  (same id and start; an ``opened`` event with ``reopened=True``) rather than opening a new one, so a
  second wave of the same story stays one alert. After the cooldown a firing signal opens a new alert.
- **budget**: at most ``max_notifications_per_hour`` opened/updated events per subject in any 60
  minutes (all kinds share one ``NotificationBudget``). Beyond it events are suppressed and counted;
  the alert is still tracked. If an alert's ``opened`` was suppressed, the first later event that fits
  the budget is sent as ``opened`` (receivers never see an update for an alert they do not know), and
  if none ever fits, its resolve is silent. A ``resolved`` for an announced alert is never suppressed:
  an alert nobody hears close is worse than one more message.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.baseline import SEVERITY_RANK, Severity
from pipeline.domain.alerts.config import DetectorConfig
from pipeline.domain.alerts.detectors import Kind, Signal
from pipeline.domain.alerts.series import as_utc, floor_minute
from schemas.records import Alert

AlertState = Literal["opened", "updated", "resolved"]
TrackerState = Literal["quiet", "open", "cooldown"]
HOUR = timedelta(hours=1)


def alert_id(subject: str, kind: Kind, started_at: datetime) -> str:
    """Deterministic id: 16 hex digits of SHA-1 over subject, kind and the start minute."""
    key = f"{subject}\x1f{kind}\x1f{floor_minute(started_at).isoformat()}"
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition to tell the world about."""

    alert_id: str
    subject: str
    kind: Kind
    state: AlertState
    severity: Severity  # the peak severity of the alert so far
    started_at: datetime
    updated_at: datetime
    signal: Signal
    reopened: bool = False


class NotificationBudget:
    """At most ``per_hour`` notifications in any sliding 60 minutes, for one subject; counts the rest."""

    def __init__(self, per_hour: int) -> None:
        if per_hour < 1:
            raise AlertError(f"per_hour must be >= 1, got {per_hour}")
        self.per_hour = per_hour
        self._sent: deque[datetime] = deque(maxlen=per_hour)
        self.suppressed = 0

    def take(self, now: datetime) -> bool:
        """Spend one notification at ``now`` if the budget allows; otherwise count a suppression."""
        while self._sent and now - self._sent[0] >= HOUR:
            self._sent.popleft()
        if len(self._sent) >= self.per_hour:
            self.suppressed += 1
            return False
        self._sent.append(now)
        return True


class AlertTracker:
    """The lifecycle of one subject's alerts of one kind (see the module docstring)."""

    def __init__(
        self, subject: str, kind: Kind, config: DetectorConfig, budget: NotificationBudget | None = None
    ) -> None:
        self.subject, self.kind, self.config = subject, kind, config
        self.budget = budget if budget is not None else NotificationBudget(config.max_notifications_per_hour)
        self.state: TrackerState = "quiet"
        self.alert_id: str | None = None
        self._started_at: datetime | None = None
        self._peak: Severity = "info"
        self._notified = False  # receivers know about the current alert
        self._last_notice: datetime | None = None  # last notification sent or suppressed
        self._quiet_minutes = 0
        self._resolved_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def on_evaluation(self, signal: Signal, now: datetime) -> list[AlertEvent]:
        """A signal on the minute still filling: may open or update, never resolves."""
        return self._step(signal, as_utc(now), closed=False)

    def on_closed_minute(self, signal: Signal, now: datetime) -> list[AlertEvent]:
        """A signal on a finished minute (``now`` is usually the minute's end): may also resolve."""
        return self._step(signal, as_utc(now), closed=True)

    def _step(self, signal: Signal, now: datetime, *, closed: bool) -> list[AlertEvent]:
        if signal.kind != self.kind:
            raise AlertError(f"tracker for {self.kind} got a {signal.kind} signal")
        cooldown = timedelta(minutes=self.config.cooldown_minutes)
        if self.state == "cooldown" and self._resolved_at is not None and now - self._resolved_at >= cooldown:
            self.state = "quiet"
        if self.state != "open":
            return self._open(signal, now) if signal.firing else []
        if closed:
            self._quiet_minutes = 0 if signal.elevated else self._quiet_minutes + 1
            if self._quiet_minutes >= self.config.resolve_after_minutes:
                return self._resolve(signal, now)
        rises = SEVERITY_RANK[signal.severity] > SEVERITY_RANK[self._peak]
        if rises:
            self._peak = signal.severity
        last = self._last_notice
        due = last is None or now - last >= timedelta(minutes=self.config.update_every_minutes)
        if rises or (due and signal.elevated):
            return self._notify("updated", signal, now)
        return []

    def _open(self, signal: Signal, now: datetime) -> list[AlertEvent]:
        reopened = self.state == "cooldown"
        if reopened:
            self._peak = max(self._peak, signal.severity, key=SEVERITY_RANK.__getitem__)
        else:
            self._started_at = signal.started_at
            self.alert_id = alert_id(self.subject, self.kind, signal.started_at)
            self._peak = signal.severity
            self._notified = False
        self.state, self._quiet_minutes = "open", 0
        return self._notify("opened", signal, now, reopened=reopened)

    def _notify(self, state: AlertState, signal: Signal, now: datetime, *, reopened: bool = False) -> list[AlertEvent]:
        self._last_notice = now
        if not self.budget.take(now):
            return []
        if not self._notified:
            state = "opened"
        self._notified = True
        return [self._event(state, signal, now, reopened)]

    def _resolve(self, signal: Signal, now: datetime) -> list[AlertEvent]:
        self.state, self._resolved_at = "cooldown", now
        return [self._event("resolved", signal, now, False)] if self._notified else []

    def _event(self, state: AlertState, signal: Signal, now: datetime, reopened: bool) -> AlertEvent:
        assert self.alert_id is not None and self._started_at is not None
        return AlertEvent(
            alert_id=self.alert_id,
            subject=self.subject,
            kind=self.kind,
            state=state,
            severity=self._peak,
            started_at=self._started_at,
            updated_at=now,
            signal=signal,
            reopened=reopened,
        )


def signal_evidence(signal: Signal) -> dict[str, object]:
    """The numbers behind a signal, rounded for people, as JSON-friendly values."""
    return {
        "score": round(signal.score, 3),
        "observed": round(signal.observed, 3),
        "expected": round(signal.expected, 3),
        "ratio": round(signal.ratio, 3),
        "minute": signal.minute.isoformat(),
        "fraction": round(signal.fraction, 3),
        "span_minutes": round(signal.span_minutes, 3),
        "firing": signal.firing,
    }


def to_record(event: AlertEvent, evidence: Mapping[str, object] | None = None) -> Alert:
    """The ``schemas.records.Alert`` for an event: the signal's numbers plus the caller's ``evidence``.

    The caller adds what only it knows (top posts, hot words, platforms); its keys win over ours.
    """
    return Alert(
        id=event.alert_id,
        subject=event.subject,
        kind=event.kind,
        state=event.state,
        severity=event.severity,
        started_at=event.started_at,
        updated_at=event.updated_at,
        evidence={**signal_evidence(event.signal), "reopened": event.reopened, **(evidence or {})},
    )
