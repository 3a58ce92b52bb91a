"""Alert thresholds: sensible defaults, impossible values refused with a clear message, per-subject overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.domain.alerts import AlertError
from pipeline.domain.alerts.config import AlertsConfig, DetectorConfig
from pipeline.errors import YuqingError


def test_defaults_are_consistent() -> None:
    cfg = DetectorConfig()
    assert cfg.close_z < cfg.open_z and cfg.burst_close_z < cfg.burst_open_z and cfg.flip_close_z < cfg.flip_open_z
    assert cfg.min_negatives >= 1 and cfg.min_ratio >= 1
    assert cfg.alpha == pytest.approx(1 - 0.5 ** (1 / 30))
    assert (1 - cfg.alpha) ** cfg.half_life_minutes == pytest.approx(0.5)


def test_alert_error_is_a_yuqing_value_error() -> None:
    assert issubclass(AlertError, YuqingError) and issubclass(AlertError, ValueError)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_negatives": -1}, "min_negatives"),
        ({"min_negatives": 0}, "min_negatives"),
        ({"burst_min_total": -5}, "burst_min_total"),
        ({"half_life_minutes": 0}, "half_life_minutes"),
        ({"warmup_minutes": 0}, "warmup_minutes"),
        ({"partial_floor": 0}, "partial_floor"),
        ({"partial_floor": 1.5}, "partial_floor"),
        ({"surge_learning": -0.1}, "surge_learning"),
        ({"min_ratio": 0.5}, "min_ratio"),
        ({"min_share_lift": 1.0}, "min_share_lift"),
        ({"flip_negative_share": 0}, "flip_negative_share"),
        ({"max_notifications_per_hour": 0}, "max_notifications_per_hour"),
        ({"resolve_after_minutes": 0}, "resolve_after_minutes"),
        ({"cooldown_minutes": -1}, "cooldown_minutes"),
        ({"open_z": 1.0, "close_z": 1.5}, "close_z (1.5) must be below open_z (1.0)"),
        ({"open_z": 2.0, "close_z": 2.0}, "close_z (2.0) must be below open_z (2.0)"),
        ({"burst_close_z": 6.0}, "burst_close_z (6.0) must be below burst_open_z (5.0)"),
        ({"flip_close_z": 3.0}, "flip_close_z (3.0) must be below flip_open_z (3.0)"),
        ({"warning_z": 12.0}, "warning_z (12.0) must be at most critical_z (10.0)"),
        ({"warning_ratio": 6.0}, "warning_ratio (6.0) must be at most critical_ratio (5.0)"),
        ({"open_zz": 4.0}, "open_zz"),
    ],
)
def test_impossible_values_are_refused_with_a_clear_message(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DetectorConfig.model_validate(overrides)
    assert message in str(caught.value)


def test_config_is_frozen() -> None:
    cfg = DetectorConfig()
    with pytest.raises(ValidationError):
        cfg.open_z = 1.0  # type: ignore[misc]


def test_per_subject_overrides_apply_to_that_subject_only() -> None:
    alerts = AlertsConfig.model_validate(
        {"defaults": {"open_z": 5.0}, "subjects": {"云帆": {"min_negatives": 20, "cooldown_minutes": 30}}}
    )
    own = alerts.for_subject("云帆")
    assert own.min_negatives == 20 and own.cooldown_minutes == 30
    assert own.open_z == 5.0  # the defaults still apply underneath
    assert isinstance(own.min_negatives, int)
    other = alerts.for_subject("别的")
    assert other == alerts.defaults and other.min_negatives == DetectorConfig().min_negatives


@pytest.mark.parametrize(
    ("subjects", "message"),
    [
        ({"云帆": {"min_negatives": -3}}, "overrides for subject '云帆' are invalid: min_negatives"),
        ({"云帆": {"open_z": 1.0}}, "close_z (1.5) must be below open_z (1.0)"),
        ({"云帆": {"no_such_field": 1}}, "no_such_field"),
        ({"云帆": {"min_negatives": 2.5}}, "min_negatives"),
        ({" ": {"open_z": 5.0}}, "must not be blank"),
    ],
)
def test_invalid_overrides_fail_at_load_time_naming_the_subject(
    subjects: dict[str, dict[str, float]], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AlertsConfig.model_validate({"subjects": subjects})
    assert message in str(caught.value)


def test_empty_config_gives_defaults() -> None:
    assert AlertsConfig().for_subject("x") == DetectorConfig()
