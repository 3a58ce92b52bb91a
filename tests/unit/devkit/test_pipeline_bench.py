"""The pipeline bench's arithmetic: the stage table from the worker's counters, and latency percentiles."""

from __future__ import annotations

from pipeline.devkit.bench.latency import percentile_ms
from pipeline.devkit.bench.pipeline_bench import stage_costs

SECONDS, RECORDS = "yuqing_stage_seconds_total", "yuqing_stage_records_total"


def counters(agent: str, stages: dict[str, float], posts: int) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for stage, seconds in stages.items():
        found[SECONDS, agent, stage] = seconds
        found[RECORDS, agent, stage] = posts
    return found


def test_stages_are_microseconds_per_post_in_pipeline_order_with_the_rest_as_other() -> None:
    score = counters("score", {"model": 0.5, "decode": 0.1, "clean": 0.2, "batch": 1.0}, 1000)
    aggregate = counters("aggregate", {"redis_flush": 0.2, "clickhouse_flush": 0.3, "decode": 0.0, "batch": 0.6}, 1000)
    table = stage_costs(score | aggregate, e2e_posts_per_s=500.0)
    assert list(table["score"]) == ["decode", "clean", "model", "other", "batch"]
    assert table["score"]["model"] == 500.0 and table["score"]["other"] == 200.0
    assert list(table["aggregate"]) == ["decode", "redis_flush", "clickhouse_flush", "other", "batch"]
    assert table["aggregate"]["other"] == 100.0
    assert table["sum_of_batches"] == 1600.0 and table["e2e_us_per_post"] == 2000.0


def test_a_stage_that_saw_no_record_costs_nothing() -> None:
    table = stage_costs(counters("score", {"deliver": 0.0, "batch": 0.0}, 0), e2e_posts_per_s=None)
    assert table["score"] == {"deliver": 0.0, "other": 0.0, "batch": 0.0} and table["e2e_us_per_post"] is None


def test_percentiles_are_milliseconds_and_none_without_samples() -> None:
    assert percentile_ms([0.1, 0.2, 0.3], 50) == 200.0
    assert percentile_ms([], 99) is None
