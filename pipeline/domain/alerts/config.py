"""Detector thresholds: one validated, frozen ``DetectorConfig``, and per-subject overrides of it.

The defaults are tuned for subjects of a few posts to a few thousand posts a minute: a false alarm
costs an analyst's attention, so a surge must be unlikely under the baseline (``open_z``), large in
relative terms (``min_ratio``) and in absolute terms (``min_negatives``) at once. A subject with its
own rhythm (a brand that is always loud, a politician who is always criticised) gets overrides in
``AlertsConfig.subjects`` instead of a global change.

Impossible values fail at load time with a message naming the field (pydantic ``ValidationError``,
whose errors are ``ValueError``), never at 3 a.m. in the middle of a surge.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.domain.alerts import AlertError


class DetectorConfig(BaseModel):
    """Thresholds of the three detectors and of the alert lifecycle, for one subject."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Baseline
    half_life_minutes: float = Field(30.0, gt=0, le=10_080, description="EWMA half-life of the baseline.")
    warmup_minutes: int = Field(10, ge=1, le=10_080, description="Minutes in the baseline before any alert.")
    surge_learning: float = Field(
        0.05, ge=0, le=1, description="Share of the normal learning rate applied to minutes inside a surge."
    )
    guard_minutes: int = Field(
        5, ge=0, le=60, description="Closed minutes held back before they join the baseline (guard band)."
    )
    window_minutes: int = Field(
        3, ge=1, le=60, description="Minutes (current one included) of the sustained test; 1 disables it."
    )
    partial_floor: float = Field(
        0.25, gt=0, le=1, description="Least fraction of a minute the baseline is scaled to at minute start."
    )
    min_rate: float = Field(0.5, gt=0, le=1e6, description="Floor of a baseline rate, posts per minute.")
    # Negative surge
    open_z: float = Field(4.0, gt=0, le=1e3, description="Score that opens a negative surge.")
    close_z: float = Field(1.5, ge=0, le=1e3, description="Score below which an open surge counts as quiet.")
    min_negatives: int = Field(5, ge=1, description="Negative posts per minute a surge needs at least.")
    min_ratio: float = Field(2.0, ge=1, le=1e6, description="Observed negatives over expected, at least.")
    min_share_lift: float = Field(
        0.05, ge=0, lt=1, description="Negative share must exceed the baseline share by this much."
    )
    min_share_z: float = Field(
        2.0, ge=0, le=1e3, description="The negative share's rise must be this sure (binomial z) too."
    )
    # Volume burst
    burst_open_z: float = Field(5.0, gt=0, le=1e3, description="Score that opens a volume burst.")
    burst_close_z: float = Field(2.0, ge=0, le=1e3, description="Score below which a burst counts as quiet.")
    burst_min_total: int = Field(30, ge=1, description="Posts per minute a burst needs at least.")
    burst_ratio: float = Field(3.0, ge=1, le=1e6, description="Observed volume over expected, at least.")
    # Sentiment flip
    flip_baseline_positive: float = Field(
        0.5, gt=0, le=1, description="Baseline positive share at least (and above the negative share)."
    )
    flip_negative_share: float = Field(
        0.5, gt=0, le=1, description="Current negative share at least (and above the positive share)."
    )
    flip_min_total: int = Field(20, ge=1, description="Posts in the test window a flip needs at least.")
    flip_open_z: float = Field(3.0, gt=0, le=1e3, description="Share z-score that opens a flip.")
    flip_close_z: float = Field(1.0, ge=0, le=1e3, description="Share z-score below which a flip counts as quiet.")
    # Severity (score and ratio must both reach a level)
    warning_z: float = Field(6.0, gt=0, le=1e3)
    critical_z: float = Field(10.0, gt=0, le=1e3)
    warning_ratio: float = Field(3.0, ge=1, le=1e6)
    critical_ratio: float = Field(5.0, ge=1, le=1e6)
    # Lifecycle
    resolve_after_minutes: int = Field(3, ge=1, le=1_440, description="Quiet closed minutes that resolve.")
    cooldown_minutes: int = Field(15, ge=0, le=1_440, description="After a resolve, a new surge reopens it.")
    update_every_minutes: int = Field(10, ge=1, le=1_440, description="Reminder interval while open.")
    max_notifications_per_hour: int = Field(6, ge=1, le=10_000, description="Per subject, all kinds together.")

    @model_validator(mode="after")
    def _consistent(self) -> DetectorConfig:
        for low, high, strict in (
            ("close_z", "open_z", True),
            ("burst_close_z", "burst_open_z", True),
            ("flip_close_z", "flip_open_z", True),
            ("warning_z", "critical_z", False),
            ("warning_ratio", "critical_ratio", False),
        ):
            below, above = getattr(self, low), getattr(self, high)
            if below > above or (strict and below == above):
                relation = "below" if strict else "at most"
                raise AlertError(f"{low} ({below}) must be {relation} {high} ({above})")
        return self

    @property
    def alpha(self) -> float:
        """The EWMA weight of one new minute, from the half-life."""
        return float(1.0 - 0.5 ** (1.0 / self.half_life_minutes))


class AlertsConfig(BaseModel):
    """Defaults plus partial per-subject overrides, e.g. ``{"云帆": {"min_negatives": 20}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: DetectorConfig = DetectorConfig()
    subjects: dict[str, dict[str, int | float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_valid(self) -> AlertsConfig:
        for name in self.subjects:
            if not name.strip():
                raise AlertError("subject names in overrides must not be blank")
            self.for_subject(name)  # fail now, naming the subject, rather than when it first shows up
        return self

    def for_subject(self, name: str) -> DetectorConfig:
        """The defaults with ``name``'s overrides applied (the defaults when it has none)."""
        overrides: Mapping[str, int | float] = self.subjects.get(name, {})
        if not overrides:
            return self.defaults
        try:
            return DetectorConfig.model_validate({**self.defaults.model_dump(), **overrides})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
            raise AlertError(f"overrides for subject {name!r} are invalid: {problems}") from exc
