"""The demo slows its feeds where the model is slow, so that its history is scored in minutes."""

from __future__ import annotations

from pipeline.devkit.demo import (
    BACKFILL_MINUTES,
    FLOOD_ORGANIC_SHARE,
    HISTORY_SCORING_S,
    PIPELINE_SHARE,
    affordable_rate,
)


def test_a_fast_model_gets_the_requested_rate() -> None:
    assert affordable_rate(10.0, 2_000.0) == 10.0


def test_a_slow_model_gets_a_rate_whose_history_is_scored_in_time() -> None:
    rate = affordable_rate(10.0, 40.0)
    history = rate * (1 + FLOOD_ORGANIC_SHARE) * 60 * BACKFILL_MINUTES
    assert 0 < rate < 10.0
    assert history / (PIPELINE_SHARE * 40.0) <= HISTORY_SCORING_S + 1
