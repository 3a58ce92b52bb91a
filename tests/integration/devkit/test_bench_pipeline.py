"""A tiny pipeline bench on the trained TF-IDF baseline: the report's shape and sanity, never its times."""

from __future__ import annotations

import pytest

from pipeline.devkit.bench.pipeline_bench import LOADS, run
from pipeline.settings import Settings
from tests.support.paths import REPO
from tests.support.require import require_service

pytestmark = pytest.mark.integration

BASELINE = REPO / ".yuqing" / "models" / "baseline"
SCORE_STAGES = (
    *("decode", "clean", "segment", "signature", "stack", "noise", "model", "subjects", "serialise", "deliver"),
    *("other", "batch"),
)
AGGREGATE_STAGES = ("decode", "redis_flush", "clickhouse_flush", "other", "batch")


@pytest.mark.parametrize(
    "split_agents", [False, True], ids=["one-worker-on-chdb", "scoring-and-storing-workers-on-a-clickhouse-server"]
)
def test_tiny_run_reports_stage_costs_cpu_model_ratio_and_latency(
    redis_url: str, clickhouse_server_url: str, split_agents: bool
) -> None:
    require_service((BASELINE / "model.json").is_file(), f"{BASELINE} missing: run `yuqing model train-baseline`")
    base = Settings(model_path=BASELINE, redis_url=redis_url, clickhouse_url=clickhouse_server_url)
    # More posts than one micro-batch (256), so the end-to-end rate spans more than one flush.
    report = run(600, base, latency_s=1.5, split_agents=split_agents, clickhouse_server=split_agents)
    assert report["worker_agents"] == ("split" if split_agents else "all")
    assert report["clickhouse"].startswith("server" if split_agents else "chdb")

    end_to_end, model = report["end_to_end"], report["model_alone"]
    assert end_to_end["posts"] == 600 and end_to_end["posts_per_s"] > 0
    assert model["posts"] == 600 and model["posts_per_s"] > 0
    assert end_to_end["model_alone_posts_per_s"] == model["posts_per_s"]
    before, after = model["before_and_after_posts_per_s"]
    assert before > 0 and after > 0 and model["posts_per_s"] == round((before + after) / 2, 1)
    assert 0 < end_to_end["e2e_over_model"] <= 2

    stages = report["stages"]
    assert tuple(stages["score"]) == SCORE_STAGES and tuple(stages["aggregate"]) == AGGREGATE_STAGES
    assert all(us >= 0 for agent in ("score", "aggregate") for us in stages[agent].values())
    assert stages["score"]["model"] > 0 and stages["aggregate"]["redis_flush"] > 0
    assert stages["e2e_us_per_post"] > 0

    cpu = report["cpu"]
    workers = ("worker_score", "worker_aggregate") if split_agents else ("worker_all",)
    assert set(cpu["us_per_post"]) == {*workers, "broker", "redis", "bench", "rest_of_machine"}
    # The worker that flushes to Redis works throughout the window, which opens at its first flush. A split
    # scorer can score all 600 posts before that flush, and a broker's share can stay under a clock tick.
    assert cpu["us_per_post"][workers[-1]] > 0
    assert (
        min(cpu["us_per_post"].values()) >= 0 and cpu["window_s"] > 0 and set(cpu["cores"]) == set(cpu["us_per_post"])
    )

    latency = report["latency"]
    assert latency["definition"] and latency["capacity_posts_per_s"] == end_to_end["posts_per_s"]
    assert [level["load"] for level in latency["loads"]] == list(LOADS)
    for level in latency["loads"]:
        assert level["posts"] > 0 and level["seen"] == level["posts"]
        assert 0 < level["p50_ms"] <= level["p99_ms"] <= level["max_ms"]
