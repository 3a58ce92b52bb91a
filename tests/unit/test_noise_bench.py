"""The noise benchmark's short mode meets its targets and prints one JSON object."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.bench import noise_bench


def test_short_mode_meets_the_targets(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    code = noise_bench.main(["--short", "--json"])
    elapsed = time.perf_counter() - started
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"]
    assert report["posts"] == noise_bench.SHORT_POSTS
    assert report["flagged_share"] >= noise_bench.TARGET_FLAGGED
    assert report["false_positive_share"] <= noise_bench.TARGET_FALSE_POSITIVE
    assert report["us_per_post"] > 0 and report["reference_us_per_post"] > 0 and report["cost_ratio"] > 0
    variants = report["by_variant"]
    assert {"bot", "disguised", "slow", "spam-account", "phrase", "viral-repost", "chain", "organic"} <= set(variants)
    assert variants["phrase"]["flagged"] == 0 and variants["viral-repost"]["flagged"] == 0
    assert elapsed < 30


def test_too_few_posts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        noise_bench.run(posts=10)
