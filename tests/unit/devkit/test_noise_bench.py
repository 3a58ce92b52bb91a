"""The noise benchmark's short mode meets its targets and prints one JSON object."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline.cli.main import main
from pipeline.devkit.bench import noise_bench


def test_short_mode_meets_the_targets() -> None:
    result = CliRunner().invoke(main, ["bench", "noise", "--short", "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["ok"]
    assert report["posts"] == noise_bench.SHORT_POSTS
    assert report["flagged_share"] >= noise_bench.TARGET_FLAGGED
    assert report["false_positive_share"] <= noise_bench.TARGET_FALSE_POSITIVE
    assert report["us_per_post"] > 0 and report["reference_us_per_post"] > 0 and report["cost_ratio"] > 0
    variants = report["by_variant"]
    assert {"bot", "disguised", "slow", "spam-account", "phrase", "viral-repost", "chain", "organic"} <= set(variants)
    assert variants["phrase"]["flagged"] == 0 and variants["viral-repost"]["flagged"] == 0


def test_too_few_posts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        noise_bench.run(posts=10)
