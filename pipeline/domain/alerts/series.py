"""What the detectors read: one subject's deduplicated counts in one minute, and which posts may count.

``MinuteCounts`` is the whole input of detection. The counts are of deduplicated posts (a copy-paste
flood counts once per cluster upstream), so a detector sees voices, not copies. ``total`` may exceed
``negative + neutral + positive``: posts the model could not score (``unknown``) still count as volume.

``EventTimeGate`` decides which posts are too old or too far in the future to belong in a live minute.
A post from 40 minutes ago that arrives now (a replayed feed, a platform catching up) must not
inflate the current minute, and a post stamped an hour ahead (a broken clock) must not open a minute
that has not happened. The gate only classifies; the caller drops such posts and counts the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pipeline.domain.alerts import AlertError

GateReason = Literal["too_far_future", "too_late"]

MAX_COUNT = 10**9
"""No subject gets a billion posts in a minute; a larger count is a bug upstream, refused here."""


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC (as records do); aware ones are converted to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def floor_minute(moment: datetime) -> datetime:
    """The UTC minute a moment falls in."""
    return as_utc(moment).replace(second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """One subject's deduplicated post counts in one UTC minute (a closed minute or the one filling)."""

    minute: datetime
    total: int
    negative: int = 0
    neutral: int = 0
    positive: int = 0

    def __post_init__(self) -> None:
        minute = as_utc(self.minute)
        if minute.second or minute.microsecond:
            raise AlertError(f"minute must be a whole minute, got {self.minute.isoformat()}")
        object.__setattr__(self, "minute", minute)
        for name in ("total", "negative", "neutral", "positive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
                raise AlertError(f"{name} must be an int in [0, {MAX_COUNT}], got {value!r}")
        if self.negative + self.neutral + self.positive > self.total:
            raise AlertError(
                f"negative + neutral + positive ({self.negative + self.neutral + self.positive}) "
                f"exceeds total ({self.total})"
            )

    @classmethod
    def empty(cls, minute: datetime) -> MinuteCounts:
        """A minute in which nothing was said about the subject."""
        return cls(minute=minute, total=0)

    @property
    def negative_share(self) -> float:
        """Negative posts over all posts; 0 for an empty minute."""
        return self.negative / self.total if self.total else 0.0

    @property
    def positive_share(self) -> float:
        """Positive posts over all posts; 0 for an empty minute."""
        return self.positive / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class EventTimeGate:
    """Classifies a post's event time against ``now``: fine (None), too far in the future, or too late.

    ``future_tolerance_s`` absorbs clock skew between platforms and us; ``max_lateness_s`` is how long
    a minute stays open to stragglers (posts older than that are history, not live opinion).
    """

    future_tolerance_s: float = 120.0
    max_lateness_s: float = 900.0

    def __post_init__(self) -> None:
        if not 0 <= self.future_tolerance_s < float("inf") or not 0 < self.max_lateness_s < float("inf"):
            raise AlertError("future_tolerance_s must be >= 0 and max_lateness_s > 0, both finite")

    def check(self, event_time: datetime, now: datetime) -> GateReason | None:
        """None when the post may count; otherwise why it must not."""
        event, current = as_utc(event_time), as_utc(now)
        if event - current > timedelta(seconds=self.future_tolerance_s):
            return "too_far_future"
        if current - event > timedelta(seconds=self.max_lateness_s):
            return "too_late"
        return None
