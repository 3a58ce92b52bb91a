"""The statistics the detectors share: a bounded baseline and scores that stay honest at small counts.

``Ewma`` is the baseline: an exponentially weighted mean and variance, three floats and a counter,
whatever the history. For its first minutes it is the plain running mean (weight ``1/n`` until that
falls below the EWMA weight), so ten minutes of warm-up give a mean of ten minutes, not a mean pulled
towards zero by the starting value. ``effective_minutes`` says how much history the mean stands for,
so that a young baseline's own uncertainty widens the test instead of raising false alarms.

``poisson_z`` scores a count against its expectation as the signed root of the Poisson deviance.
The textbook ``(x - λ) / √λ`` is far too eager at small λ (at λ = 3, x = 11 gives 4.6 "sigmas" for
an event that happens every 3,400 minutes, a couple of times a week per subject); the deviance form
gives 3.5, close to the exact tail (3.4). Over-dispersion (a variance above the mean, which real
feeds have) divides the deviance, so a bursty subject needs a larger jump. Posts per minute are the
sum of many independent people deciding to post, so Poisson is the right floor: var >= mean.

``share_z`` scores a share against a baseline share (a binomial z), for the sentiment flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.config import DetectorConfig

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[Severity, int] = {"info": 0, "warning": 1, "critical": 2}

SCORE_LIMIT = 1e6
"""Scores are clamped to ±this, so that no input, however absurd, yields an infinite score."""


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance of one per-minute quantity; a running mean at first."""

    alpha: float
    minutes: int = 0
    mean: float = 0.0
    var: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise AlertError(f"alpha must be in (0, 1], got {self.alpha}")

    def update(self, value: float, weight: float = 1.0, *, learn_variance: bool = True) -> None:
        """Fold one minute in; ``weight`` < 1 learns more slowly (minutes inside a surge)."""
        rate = max(self.alpha, 1.0 / (self.minutes + 1)) * weight
        diff = value - self.mean
        step = rate * diff
        self.mean += step
        if learn_variance:
            self.var = (1.0 - rate) * (self.var + diff * step)
        self.minutes = min(self.minutes + 1, 1 << 30)

    @property
    def effective_minutes(self) -> float:
        """How many minutes of history the mean is worth (its variance is var / this)."""
        return float(max(1.0, min(float(self.minutes), (2.0 - self.alpha) / self.alpha)))


def _clamp(score: float) -> float:
    if math.isnan(score):
        return 0.0
    return max(-SCORE_LIMIT, min(SCORE_LIMIT, score))


def poisson_z(observed: float, expected: float, dispersion: float = 1.0) -> float:
    """Signed root of the Poisson deviance of ``observed`` against ``expected``, over ``dispersion``."""
    if not expected > 0 or not dispersion > 0:
        raise AlertError(f"expected and dispersion must be > 0, got {expected} and {dispersion}")
    if observed <= 0:
        deviance = 2.0 * expected
    else:
        deviance = 2.0 * (observed * math.log(observed / expected) - (observed - expected))
    return _clamp(math.copysign(math.sqrt(max(deviance, 0.0) / dispersion), observed - expected))


def share_z(hits: float, trials: float, baseline_share: float) -> float:
    """Binomial z of ``hits / trials`` against ``baseline_share`` (kept within [0.01, 0.99]); 0 without trials."""
    if trials <= 0:
        return 0.0
    p0 = min(max(baseline_share, 0.01), 0.99)
    return _clamp((hits / trials - p0) / math.sqrt(p0 * (1.0 - p0) / trials))


def severity_of(score: float, ratio: float, config: DetectorConfig) -> Severity:
    """A level that both the score (how sure) and the ratio (how big) reach; a huge z on a small change stays info."""
    if score >= config.critical_z and ratio >= config.critical_ratio:
        return "critical"
    if score >= config.warning_z and ratio >= config.warning_ratio:
        return "warning"
    return "info"
