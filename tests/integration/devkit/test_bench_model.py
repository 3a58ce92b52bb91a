"""The short model benchmark on a tiny model folder, against the trained TF-IDF baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.paths import REPO
from tests.support.require import require_service
from tests.support.tiny_transformer import build_tiny
from workers.scoring.options import cpu_has_native_bf16

pytestmark = pytest.mark.integration

BASELINE_CARD = REPO / ".yuqing" / "models" / "baseline" / "model.json"


def test_short_bench_json_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_service(BASELINE_CARD.is_file(), f"{BASELINE_CARD} missing: run `yuqing model train-baseline`")
    from safetensors.torch import load_file, save_file

    folder = build_tiny(tmp_path / "tiny", card={})
    headless = build_tiny(tmp_path / "headless", tokenizer="wordpiece")  # a base model: timed with a random head
    weights = load_file(headless / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier")}, headless / "model.safetensors")
    monkeypatch.chdir(REPO)  # the bench finds the baseline under .yuqing/models, as the CLI does
    monkeypatch.setenv("YUQING_DEVICE", "cpu")
    monkeypatch.setenv("YUQING_TORCH_THREADS", "2")
    from pipeline.cli.main import main
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    try:
        arguments = ["bench", "model", "--model", str(folder), "--model", str(headless), "--short", "--json"]
        outcome = CliRunner().invoke(main, arguments)
    finally:
        get_settings.cache_clear()
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)

    assert result["bench"] == "model" and result["short"] is True
    assert result["plan"]["batch_sizes"] == [1, 8, 32]
    precision = "bf16" if cpu_has_native_bf16() else "fp32"  # what precision auto picks on this CPU
    assert result["device"] == "cpu" and result["precision"] == precision and result["torch_threads"] == 2
    assert result["peak_flops"] is None and result["gpu"] is None  # no known peak on a CPU
    reference = result["reference"]
    assert reference["model_id"] == "yuqing-baseline-tfidf-lr" and reference["best"]["posts_per_s"] > 0

    model, base = result["models"]
    assert base["random_head"] is True and "timing only" in base["note"] and base["path"] == str(headless)
    assert model["path"] == str(folder) and model["model_id"] == "tiny-test" and model["random_head"] is False
    assert [row["batch_size"] for row in model["batches"]] == [1, 8, 32]
    for row in model["batches"]:
        assert row["posts"] >= row["batch_size"] and row["posts_per_s"] > 0 and row["achieved_tflops"] > 0
        assert row["peak_fraction"] is None and 0 <= row["padding_fraction"] < 1
    # Length bucketing: batch 1 never pads, and sorted micro-batches keep padding modest.
    assert model["batches"][0]["padding_fraction"] == 0 and model["batches"][-1]["padding_fraction"] < 0.5
    assert all(0 < row["mean_call_size"] <= row["batch_size"] for row in model["batches"])
    assert result["plan"]["max_tokens_per_call"] == 32_768
    assert model["batch1_posts_per_s"] == model["batches"][0]["posts_per_s"]
    assert model["best"]["posts_per_s"] == max(row["posts_per_s"] for row in model["batches"])
    assert model["ratio_to_reference"] == pytest.approx(
        model["best"]["posts_per_s"] / reference["best"]["posts_per_s"], rel=1e-3
    )
    assert 0 < model["non_embedding_parameters"] < model["parameters"]
    assert model["layers"] == 2 and model["hidden"] == 32 and 2 < model["mean_tokens"] <= 64
