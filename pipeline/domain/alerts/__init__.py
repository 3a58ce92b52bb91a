"""Alert detection: pure logic that turns one subject's per-minute counts into alert transitions.

The pieces, each usable and testable on its own (no I/O, no clock reads: time is always passed in):
- ``series``: ``MinuteCounts`` (one subject's deduplicated counts in one minute) and ``EventTimeGate``
  (which posts are too late or too far in the future to count);
- ``config``: ``DetectorConfig`` (thresholds, validated) and ``AlertsConfig`` (defaults plus
  per-subject overrides);
- ``baseline``: the small statistics every detector shares (an EWMA with a warm-up ramp, a Poisson
  z-score that stays calibrated at small counts);
- ``detectors``: negative surge, volume burst and sentiment flip, each a small state updated minute
  by minute, each able to judge the still-filling current minute;
- ``lifecycle``: ``AlertTracker`` (quiet → open → resolved, hysteresis, cooldown, notification budget)
  and ``to_record`` (the ``schemas.records.Alert`` a sink writes);
- ``engine``: ``DetectionEngine``, detectors and trackers for many subjects, bounded.

This module only holds the error type, so that importing it stays cheap and cycle-free.
"""

from pipeline.errors import YuqingError


class AlertError(YuqingError, ValueError):
    """Impossible alert configuration or input values (negative counts, a minute that is not whole, …)."""
