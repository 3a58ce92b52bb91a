"""Three detectors over one subject's minute series: negative surge, volume burst, sentiment flip.

Each detector keeps a small state (a few EWMAs, the last ``window_minutes - 1`` closed minutes, two
flags) and offers two calls:
- ``evaluate(counts, fraction_elapsed)`` judges the minute still filling. The baseline expectation
  is scaled to the elapsed fraction of the minute, never below ``partial_floor`` (a quarter minute by
  default), so the first few posts of a minute are compared with a quarter-minute's worth, not with
  almost nothing. This is what lets an alert open 20-40 s into a surge instead of after the minute.
  It changes no state: call it as often as you like.
- ``close_minute(counts)`` judges the finished minute the same way and folds it into the baseline.
Minutes must come in order without gaps (``DetectionEngine`` fills gaps with empty minutes), and
``evaluate`` always concerns the minute after the last closed one.

Two tests run side by side and the stronger wins: the current minute alone (sudden surges), and the
current minute plus the previous ``window_minutes - 1`` closed ones (a surge too modest to stand out
in one minute, such as 9 negatives a minute where 3 are usual, becomes clear over three).

A surge must not become the new normal within minutes. Closed minutes join the baseline only
``guard_minutes`` later (a guard band, as in radar CFAR detectors), so a surge's first minutes are
judged against a baseline they have not touched, even before anything fired. Once a detector fires it
is in an *episode* until a closed minute falls below the close threshold; a minute closed inside an
episode, or leaving the guard during one, moves the mean at ``surge_learning`` of the normal rate and
the variance not at all (the surge's distance from the old mean would inflate it and hide the surge).
A real level shift is thus absorbed over about a day. Warm-up counts minutes in the baseline, so the
first alert can come ``warmup_minutes + guard_minutes`` after a subject first appears.

``started_at`` on a signal is the first minute of the run of consecutive minutes that were each at
least one standard deviation above the baseline (the current minute when there is no such run).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Protocol

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.baseline import Ewma, Severity, poisson_z, severity_of, share_z
from pipeline.domain.alerts.config import DetectorConfig
from pipeline.domain.alerts.series import MinuteCounts

Kind = Literal["negative_surge", "volume_burst", "sentiment_flip"]
KINDS: tuple[Kind, ...] = ("negative_surge", "volume_burst", "sentiment_flip")


@dataclass(frozen=True, slots=True)
class Signal:
    """A detector's judgement of one (possibly partial) minute."""

    kind: Kind
    minute: datetime
    fraction: float  # of the current minute the expectation was scaled to (floored); 1.0 when closed
    firing: bool  # every condition to open an alert holds
    elevated: bool  # score at or above the close threshold: an open alert stays open
    score: float  # z-like: how unlikely the observation is under the baseline
    observed: float  # what was seen over the test's span (posts; a share for the flip)
    expected: float  # what the baseline expects over that span
    ratio: float  # observed / expected
    severity: Severity
    started_at: datetime  # first minute of the run of above-baseline minutes this belongs to
    span_minutes: float  # how many minutes the winning test covered
    warm: bool  # the baseline has seen ``warmup_minutes``; never firing before


class Detector(Protocol):
    """What the engine needs of a detector (see the module docstring)."""

    @property
    def kind(self) -> Kind: ...

    def evaluate(self, counts: MinuteCounts, fraction_elapsed: float) -> Signal: ...

    def close_minute(self, counts: MinuteCounts) -> Signal: ...


class _BaseDetector:
    """Window, warm-up, episode and run bookkeeping shared by the detectors."""

    kind: ClassVar[Kind]

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        # Closed minutes not yet in the baseline, each with "closed inside an episode"; the newest
        # ``window_minutes - 1`` of them are also the sustained test's window.
        self._held: deque[tuple[MinuteCounts, bool]] = deque()
        self._hold = max(config.guard_minutes, config.window_minutes - 1)
        self._episode = False
        self._run_start: datetime | None = None
        self._last_closed: datetime | None = None
        self.minutes_learned = 0

    @property
    def warm(self) -> bool:
        """The baseline holds ``warmup_minutes`` minutes; nothing fires before."""
        return self.minutes_learned >= self.config.warmup_minutes

    @property
    def _recent(self) -> list[MinuteCounts]:
        """The closed minutes of the window, oldest first."""
        size = self.config.window_minutes - 1
        return [counts for counts, _ in list(self._held)[len(self._held) - size :]] if size else []

    def _check_order(self, counts: MinuteCounts) -> None:
        last = self._last_closed
        if last is not None and (counts.minute - last).total_seconds() != 60:
            raise AlertError(f"{self.kind}: minute {counts.minute.isoformat()} does not follow {last.isoformat()}")

    def evaluate(self, counts: MinuteCounts, fraction_elapsed: float) -> Signal:
        """Judge the minute still filling, ``fraction_elapsed`` (0..1) of the way through; no state changes."""
        if math.isnan(fraction_elapsed):
            raise AlertError("fraction_elapsed must be a number in [0, 1]")
        self._check_order(counts)
        span = max(min(fraction_elapsed, 1.0), self.config.partial_floor)
        return self._judge(counts, span)[0]

    def close_minute(self, counts: MinuteCounts) -> Signal:
        """Judge a finished minute, then hold it back; the minute ``guard_minutes`` older joins the baseline."""
        self._check_order(counts)
        signal, above = self._judge(counts, 1.0)
        if signal.firing:
            self._episode = True
        elif not signal.elevated:
            self._episode = False
        self._held.append((counts, self._episode))
        if len(self._held) > self._hold:
            oldest, closed_in_episode = self._held.popleft()
            slow = closed_in_episode or self._episode
            self._learn(oldest, weight=self.config.surge_learning if slow else 1.0)
            self.minutes_learned = min(self.minutes_learned + 1, 1 << 30)
        self._run_start = (self._run_start or counts.minute) if above else None
        self._last_closed = counts.minute
        return signal

    @property
    def in_episode(self) -> bool:
        """Whether the last closed minute was inside a surge (the baseline is learning slowly)."""
        return self._episode

    def _started_at(self, counts: MinuteCounts) -> datetime:
        return self._run_start or counts.minute

    def _judge(self, counts: MinuteCounts, span: float) -> tuple[Signal, bool]:
        raise NotImplementedError

    def _learn(self, counts: MinuteCounts, weight: float) -> None:
        raise NotImplementedError


class _RateDetector(_BaseDetector):
    """A count per minute against its EWMA baseline with ``poisson_z`` (negative surge, volume burst)."""

    open_z: float
    close_z: float
    min_volume: int
    min_ratio: float

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.baseline = Ewma(config.alpha)

    @staticmethod
    def _value(counts: MinuteCounts) -> int:
        raise NotImplementedError

    def _gate(self, observed_total: int, observed: float) -> bool:
        """Extra conditions of a subclass, given the test's total posts and observed value."""
        return True

    def _test(self, observed: float, span: float) -> tuple[float, float]:
        rate = max(self.baseline.mean, self.config.min_rate)
        dispersion = max(1.0, self.baseline.var / rate) * (1.0 + span / self.baseline.effective_minutes)
        expected = rate * span
        return poisson_z(observed, expected, dispersion), expected

    def _judge(self, counts: MinuteCounts, span: float) -> tuple[Signal, bool]:
        fraction = span
        observed, total = float(self._value(counts)), counts.total
        score, expected = self._test(observed, span)
        single_score = score
        recent = self._recent
        if recent:
            w_observed = observed + sum(self._value(m) for m in recent)
            w_span = span + len(recent)
            w_score, w_expected = self._test(w_observed, w_span)
            if w_score > score:
                score, expected, observed, span = w_score, w_expected, w_observed, w_span
                total += sum(m.total for m in recent)
        ratio = observed / expected
        firing = (
            self.warm
            and score >= self.open_z
            and ratio >= self.min_ratio
            and observed >= self.min_volume * max(span, 1.0)
            and self._gate(total, observed)
        )
        signal = Signal(
            kind=self.kind,
            minute=counts.minute,
            fraction=fraction,
            firing=firing,
            elevated=self.warm and score >= self.close_z,
            score=score,
            observed=observed,
            expected=expected,
            ratio=ratio,
            severity=severity_of(score, ratio, self.config) if firing else "info",
            started_at=self._started_at(counts),
            span_minutes=span,
            warm=self.warm,
        )
        return signal, single_score >= 1.0

    def _learn(self, counts: MinuteCounts, weight: float) -> None:
        self.baseline.update(self._value(counts), weight, learn_variance=weight >= 1.0)


class NegativeSurgeDetector(_RateDetector):
    """Negative posts per minute well above their baseline, with the negative share rising too.

    The share condition keeps a positive burst (a launch everyone loves, with negatives growing only
    in proportion) from reading as a negative surge; that is a volume burst.
    """

    kind: ClassVar[Kind] = "negative_surge"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.open_z, self.close_z = config.open_z, config.close_z
        self.min_volume, self.min_ratio = config.min_negatives, config.min_ratio
        self.totals = Ewma(config.alpha)

    @staticmethod
    def _value(counts: MinuteCounts) -> int:
        return counts.negative

    def _gate(self, observed_total: int, observed: float) -> bool:
        """The share of negatives rose too, by enough and surely: when a subject's whole volume
        rises (a busy hour), its negatives rise with it, and that is not a negative surge."""
        base_share = self.baseline.mean / self.totals.mean if self.totals.mean > 0 else 0.0
        share = observed / observed_total if observed_total else 0.0
        lifted = share >= base_share + self.config.min_share_lift
        return lifted and share_z(observed, observed_total, base_share) >= self.config.min_share_z

    def _learn(self, counts: MinuteCounts, weight: float) -> None:
        super()._learn(counts, weight)
        self.totals.update(counts.total, weight, learn_variance=False)


class VolumeBurstDetector(_RateDetector):
    """All posts per minute well above their baseline, whatever their sentiment (a story breaking)."""

    kind: ClassVar[Kind] = "volume_burst"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.open_z, self.close_z = config.burst_open_z, config.burst_close_z
        self.min_volume, self.min_ratio = config.burst_min_total, config.burst_ratio

    @staticmethod
    def _value(counts: MinuteCounts) -> int:
        return counts.total


class SentimentFlipDetector(_BaseDetector):
    """A subject usually spoken of positively that is now spoken of mostly negatively.

    Judged on the window (the current minute plus the previous closed ones), since shares need more
    posts than counts to mean anything: at least ``flip_min_total`` of them.
    """

    kind: ClassVar[Kind] = "sentiment_flip"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.negatives = Ewma(config.alpha)
        self.positives = Ewma(config.alpha)
        self.totals = Ewma(config.alpha)

    def _base_shares(self) -> tuple[float, float]:
        if self.totals.mean <= 0:
            return 0.0, 0.0
        return self.negatives.mean / self.totals.mean, self.positives.mean / self.totals.mean

    def _judge(self, counts: MinuteCounts, span: float) -> tuple[Signal, bool]:
        window = [*self._recent, counts]
        closed_minutes = len(window) - 1
        total = sum(m.total for m in window)
        negative = sum(m.negative for m in window)
        positive = sum(m.positive for m in window)
        base_negative, base_positive = self._base_shares()
        score = share_z(negative, total, base_negative)
        share = negative / total if total else 0.0
        ratio = share / max(base_negative, 0.01)
        cfg = self.config
        firing = (
            self.warm
            and base_positive >= cfg.flip_baseline_positive
            and base_positive > base_negative
            and share >= cfg.flip_negative_share
            and negative > positive
            and total >= cfg.flip_min_total
            and score >= cfg.flip_open_z
        )
        signal = Signal(
            kind=self.kind,
            minute=counts.minute,
            fraction=span,
            firing=firing,
            elevated=self.warm and score >= cfg.flip_close_z,
            score=score,
            observed=share,
            expected=base_negative,
            ratio=ratio,
            severity=severity_of(score, ratio, cfg) if firing else "info",
            started_at=self._started_at(counts),
            span_minutes=span + closed_minutes,
            warm=self.warm,
        )
        return signal, share_z(counts.negative, counts.total, base_negative) >= 1.0

    def _learn(self, counts: MinuteCounts, weight: float) -> None:
        self.negatives.update(counts.negative, weight, learn_variance=False)
        self.positives.update(counts.positive, weight, learn_variance=False)
        self.totals.update(counts.total, weight, learn_variance=False)


def make_detectors(config: DetectorConfig) -> tuple[Detector, ...]:
    """One detector of each kind, in ``KINDS`` order."""
    return NegativeSurgeDetector(config), VolumeBurstDetector(config), SentimentFlipDetector(config)
