"""The demo and the pipeline benchmark, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.bench.alert_scenarios import default_plan
from pipeline.bench.alerts_bench import run as run_alerts_bench
from pipeline.bench.pipeline_bench import run as run_pipeline_bench
from pipeline.settings import Settings

pytestmark = pytest.mark.e2e


def _without_yuqing(env: os._Environ[str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if not key.startswith("YUQING_")}


def test_demo_counts_every_post_in_both_stores(model_path: Path, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--duration", "60", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**_without_yuqing(os.environ), "YUQING_MODEL_PATH": str(model_path), "YUQING_REDIS_URL": redis_url},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ingested"] > summary["backfilled"] > 10_000  # 20 minutes of history at 11 posts/s
    assert summary["scored"] == summary["ingested"]
    assert summary["redis_total"] == summary["clickhouse_total"] == summary["scored"]
    assert summary["worker_exit_code"] == 0
    subjects = summary["subjects"]
    assert {"星河乳业", "云帆手机"} <= subjects.keys()  # the demo's monitored subjects
    assert subjects["*"]["raw"] == summary["redis_total"] >= summary["redis_deduplicated"]
    flooded = subjects["云帆手机"]  # the bot flood's copies count in the raw series only
    assert flooded["raw"] > flooded["deduplicated"] + 20
    assert subjects["星河乳业"]["hot_words"]
    # The crisis raises exactly one alert, for its subject; the bot flood raises none.
    assert [(a["subject"], a["kind"]) for a in summary["alerts"]] == [("星河乳业", "negative_surge")]


def test_pipeline_bench_reports_rates_and_ratios(model_path: Path, redis_url: str) -> None:
    report = run_pipeline_bench(400, Settings(model_path=model_path, redis_url=redis_url))
    for part in ("ingest", "end_to_end"):
        assert report[part]["posts"] == 400
        assert report[part]["posts_per_s"] > 0
        assert report[part]["ratio"] > 0


def test_alerts_bench_catches_surges_early_and_ignores_decoys(model_path: Path, redis_url: str) -> None:
    report = run_alerts_bench(Settings(model_path=model_path, redis_url=redis_url), default_plan(short=True))
    ours = report["ours"]
    assert ours["recall"] == 1.0 and ours["precision"] >= 0.9, ours
    assert ours["median_delay_s"] <= 60, ours  # simulated seconds: the same on any machine
    assert report["decoy_alerts"] == []
    assert report["delay_ratio"] < 1  # sooner than the 5-minute report
