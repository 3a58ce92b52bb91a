"""``AlertService``: the detectors on the live deduplicated minute counts in Redis, with evidence.

Why read Redis rather than the stream: posts.scored is partitioned by post id, so no worker sees a
subject's whole stream, while Redis holds every subject's exact deduplicated counts per minute,
whatever the number of workers. One process (the group's leader worker) runs the service every few
seconds; each ``tick`` reads two or three minute hashes, so detection costs nothing per post.

The detectors' clock is ``now - lag_s``, held back further to the pipeline's watermark (the newest
event time counted) when the pipeline is behind, by up to ``max_lag_s``: a minute is closed (folded
into the baselines) only once the posts of it still in flight have been counted, even during a
backlog. The current minute is judged while it fills, which is how a surge is seen seconds after it
starts.

A subject new to the engine (at start, when it is added, or when it returns after going idle) gets
its baseline from the closed minutes Redis still holds (``warmup_minutes``), replayed silently, so a
restarted leader has its baselines back and re-announces nothing.

A new leader (a restart or a failover) also adopts the open alerts its predecessor announced: their
subjects are warmed up at once, an event the predecessor already announced is not announced again,
and an alert the replayed minutes no longer hold open is resolved, so a receiver never waits for a
"resolved" that the old leader died before sending.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import yaml

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.config import AlertsConfig
from pipeline.domain.alerts.engine import DetectionEngine
from pipeline.domain.alerts.lifecycle import AlertEvent, to_record
from pipeline.domain.alerts.series import MinuteCounts, floor_minute
from pipeline.observability import metrics
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive
from pipeline.stores.redis.subjects import SubjectStore
from schemas.records import Alert

log = logging.getLogger(__name__)
MINUTE = timedelta(minutes=1)
EVIDENCE_MINUTES = 30  # how far back from now evidence posts and words are gathered, at most
EVIDENCE_POSTS = 5
SUPERSEDING = "negative_surge"
OPEN_ALERTS_MAX = 1_000  # of each open state, adopted by a new leader


def load_alerts_config(path: Path | None) -> AlertsConfig:
    """Thresholds from a YAML/JSON file (``defaults`` and per-subject ``subjects`` overrides)."""
    if path is None:
        return AlertsConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return AlertsConfig.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise AlertError(f"{path}: invalid alerts configuration: {exc}") from exc


def minute_counts(minute: datetime, sentiments: Counter[str]) -> MinuteCounts:
    return MinuteCounts(
        minute,
        total=sum(sentiments.values()),
        negative=sentiments["negative"],
        neutral=sentiments["neutral"],
        positive=sentiments["positive"],
    )


def minute_range(first: datetime, end: datetime) -> list[datetime]:
    """The minutes from ``first`` up to, not including, ``end`` (both minute starts)."""
    return [first + i * MINUTE for i in range(max(int((end - first) / MINUTE), 0))]


class AlertService:
    """Detection over the monitored subjects; blocking (run it off the event loop)."""

    def __init__(
        self,
        live: RedisLive,
        subjects: SubjectStore,
        store: AlertStore,
        config: AlertsConfig | None = None,
        *,
        dashboard_url: str = "",
        lag_s: float = 5.0,
        max_lag_s: float = 120.0,
        warmup_minutes: int = 120,
    ) -> None:
        self.live, self.subjects, self.store = live, subjects, store
        self.dashboard_url = dashboard_url.rstrip("/")
        self.lag = timedelta(seconds=lag_s)
        self.max_lag = timedelta(seconds=max_lag_s)
        self.warmup_minutes = warmup_minutes
        self.engine = DetectionEngine(config)
        self._closed_until: datetime | None = None  # every minute before this one is closed
        self._last_clock: datetime | None = None
        self._muted: set[str] = set()  # ids of alerts superseded by a negative surge, until they resolve

    def tick(self, now: datetime) -> list[Alert]:
        """Close the minutes that ended, judge the current one; the alerts to deliver, saved."""
        clock = self._clock(now)
        current = floor_minute(clock)
        monitored = set(self.subjects.load().names)
        taking_over = self._closed_until is None
        if taking_over:
            self._closed_until = current
        events = self._close_until(current, monitored)
        self._last_clock = clock
        (partial,) = self.live.subject_minutes([current])
        history: list[dict[str, Counter[str]]] | None = None
        for subject, sentiments in partial.items():
            if subject not in monitored:
                continue
            if subject not in self.engine:
                history = history or self.live.subject_minutes(self._history_minutes(current))
                self._warm_up(subject, current, history)
            events += self.engine.evaluate(subject, minute_counts(current, sentiments), clock)
        alerts = [self._record(event, now) for event in self._one_incident_per_subject(events)]
        alerts = [alert for alert in alerts if not self._already_announced(alert)]
        if taking_over:
            alerts += self._adopt(current, monitored, now)
        for alert in alerts:
            self.store.save(alert)
            metrics.observe_alert(alert.state, alert.kind, alert.started_at, now)
            log.warning("alert %s %s: %s %s (%s)", alert.id, alert.state, alert.subject, alert.kind, alert.severity)
        return alerts

    def _clock(self, now: datetime) -> datetime:
        clock = now - self.lag
        watermark = self.live.watermark()
        if watermark is not None and watermark < clock:
            clock = max(watermark, now - self.max_lag)
        return clock if self._last_clock is None else max(clock, self._last_clock)  # never backwards

    def _already_announced(self, alert: Alert) -> bool:
        """An opening or a resolution the store already holds (announced by a predecessor)."""
        if alert.state == "updated":
            return False
        stored = self.store.get(alert.id)
        return stored is not None and (stored.state == "resolved") == (alert.state == "resolved")

    def _adopt(self, current: datetime, monitored: set[str], now: datetime) -> list[Alert]:
        """The resolutions a new leader owes: its predecessor's open alerts that the replayed minutes do
        not hold open (the incident ended while nobody led, or its subject is no longer monitored)."""
        announced = [a for state in ("opened", "updated") for a in self.store.find(state=state, limit=OPEN_ALERTS_MAX)]
        cold = {a.subject for a in announced if a.subject in monitored and a.subject not in self.engine}
        if cold:
            history = self.live.subject_minutes(self._history_minutes(current))
            for subject in cold:
                self._warm_up(subject, current, history)
        still_open = {alert_id for _subject, _kind, alert_id in self.engine.open_alerts()}
        return [
            alert.model_copy(update={"state": "resolved", "updated_at": now})
            for alert in announced
            if alert.id not in still_open
        ]

    def _history_minutes(self, current: datetime) -> list[datetime]:
        return minute_range(current - self.warmup_minutes * MINUTE, current)

    def _warm_up(self, subject: str, current: datetime, history: list[dict[str, Counter[str]]]) -> None:
        """Give a subject new to the engine its baseline from the closed minutes Redis holds; what those
        minutes would have raised is not announced (it is the past, or was announced before a restart)."""
        for minute, per_subject in zip(self._history_minutes(current), history, strict=True):
            sentiments = per_subject.get(subject)
            if sentiments:
                self.engine.observe_minute(subject, minute_counts(minute, sentiments))
        log.info("detection for %r warmed up on up to %d past minutes", subject, self.warmup_minutes)

    def _one_incident_per_subject(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """A negative surge supersedes the other kinds: a volume burst or a flip of a subject whose
        negative surge opens in the same tick, or is open, is not announced (nor later updated or
        resolved), so one story makes one alert. A burst announced before the surge stays announced."""
        surging = {e.subject for e in events if e.kind == SUPERSEDING and e.state == "opened"}
        surging |= {subject for subject, kind, _id in self.engine.open_alerts() if kind == SUPERSEDING}
        announced = []
        for event in events:
            if event.alert_id in self._muted:
                if event.state == "resolved":
                    self._muted.discard(event.alert_id)
                continue
            if event.kind != SUPERSEDING and event.state == "opened" and event.subject in surging:
                self._muted.add(event.alert_id)
                continue
            announced.append(event)
        return announced

    def _close_until(self, current: datetime, monitored: set[str]) -> list[AlertEvent]:
        assert self._closed_until is not None
        minutes = minute_range(self._closed_until, current)
        events: list[AlertEvent] = []
        for minute, per_subject in zip(minutes, self.live.subject_minutes(minutes), strict=True):
            for subject, sentiments in per_subject.items():
                # A subject new to the engine is warmed up (history included) when it next posts.
                if subject in monitored and subject in self.engine:
                    events += self.engine.observe_minute(subject, minute_counts(minute, sentiments))
        events += self.engine.advance(current)
        self._closed_until = current
        return events

    def _record(self, event: AlertEvent, now: datetime) -> Alert:
        """The alert with its evidence: counts against the baseline, top negative posts, hot words, link."""
        start = max(floor_minute(event.started_at), floor_minute(now) - EVIDENCE_MINUTES * MINUTE)
        minutes = minute_range(start, floor_minute(now) + MINUTE)
        subject = event.subject
        series = self.live.subject_minutes(minutes)
        evidence: dict[str, object] = {
            "counts": [
                {"minute": m.isoformat(), "total": sum(c.values()), "negative": c["negative"]}
                for m, c in ((m, per.get(subject, Counter())) for m, per in zip(minutes, series, strict=True))
            ],
            "top_posts": self.live.negative_posts(subject, minutes, EVIDENCE_POSTS),
            "hot_words": [term for term, _n in self.live.hot_words(subject, len(minutes), 10, now)],
            "emerging_words": [term for term, _z in self.live.emerging_words(subject, now=now)],
            "started_at": event.started_at.isoformat(),
            "dashboard_url": f"{self.dashboard_url}/#/subject/{quote(subject, safe='')}?alert={event.alert_id}",
        }
        return to_record(event, evidence)
