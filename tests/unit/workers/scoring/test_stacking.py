"""The stack of a Transformer and TF-IDF: the log-space mix, the TF-IDF arrays, and the card's section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from schemas.records import SentimentProbabilities
from training.baseline import FEATURES, build_pipeline
from workers.scoring.baseline import BaselineScorer
from workers.scoring.protocol import UNKNOWN, ModelNotFoundError, Prediction
from workers.scoring.stacking import (
    STACK_FOLDER,
    TfidfStack,
    as_rows,
    load_stack,
    load_tfidf,
    mix_probabilities,
    save_tfidf,
)

TEXTS = ["服务太差了", "太好了，推荐", "今天发布了新闻", "差评，退货", "好评，满意", "会议明天召开"] * 3
LABELS = ["negative", "positive", "neutral"] * 6
SETTINGS = {**FEATURES, "ngram_range": list(FEATURES["ngram_range"])}


def _fitted() -> object:
    pipeline = build_pipeline(seed=13)
    pipeline.fit(TEXTS, LABELS)
    return pipeline


def _prediction(negative: float, neutral: float, positive: float) -> Prediction:
    label = ("negative", "neutral", "positive")[int(np.argmax([negative, neutral, positive]))]
    return Prediction(label, SentimentProbabilities(negative=negative, neutral=neutral, positive=positive))


def test_the_mix_runs_from_one_model_to_the_other_and_stays_a_distribution() -> None:
    transformer, tfidf = np.array([[0.7, 0.2, 0.1]]), np.array([[0.1, 0.3, 0.6]])
    assert np.allclose(mix_probabilities(transformer, tfidf, 0.0, 1.0), transformer)
    assert np.allclose(mix_probabilities(transformer, tfidf, 1.0, 1.0), tfidf)
    half = mix_probabilities(transformer, tfidf, 0.5, 1.0)
    geometric = np.sqrt(transformer * tfidf)
    assert np.allclose(half, geometric / geometric.sum())
    assert np.allclose(
        mix_probabilities(transformer, tfidf, 0.0, 2.0), np.sqrt(transformer) / np.sqrt(transformer).sum()
    )
    # A zero from one model lowers a class without vetoing it outright.
    assert mix_probabilities(np.array([[0.0, 0.01, 0.99]]), np.array([[0.98, 0.01, 0.01]]), 0.5, 1.0)[0, 0] > 0


def test_the_tfidf_arrays_give_the_pipelines_probabilities(tmp_path: Path) -> None:
    pipeline = _fitted()
    save_tfidf(pipeline, tmp_path)
    rebuilt = load_tfidf(tmp_path, SETTINGS)
    probe = ["服务太差", "推荐", "新闻发布", "完全没见过的字"]
    order = [list(pipeline.classes_).index(label) for label in ("negative", "neutral", "positive")]  # type: ignore[attr-defined]
    expected = pipeline.predict_proba(probe)[:, order]  # type: ignore[attr-defined]
    got = rebuilt.predict_proba(probe)
    assert np.allclose(got, expected, atol=5e-3)  # the arrays are stored in half precision
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_a_text_only_one_model_reads_keeps_the_transformers_prediction(tmp_path: Path) -> None:
    stack = TfidfStack(BaselineScorer(_fitted(), "v"), weight=0.5, temperature=1.0, version="v")
    transformer = [_prediction(0.1, 0.1, 0.8), UNKNOWN, _prediction(0.2, 0.6, 0.2)]
    texts = ["太好了，推荐", "服务太差了", "😀"]  # the emoji has no n-gram TF-IDF knows
    mixed = stack.mix(texts, transformer)
    assert mixed[1] is UNKNOWN and mixed[2] == transformer[2]
    assert mixed[0].label == "positive" and mixed[0].probabilities != transformer[0].probabilities


def test_a_card_without_stacking_serves_the_transformer_alone_and_a_broken_one_fails(tmp_path: Path) -> None:
    assert load_stack(tmp_path, {"kind": "transformer"}) is None
    section = {"weight": 0.5, "temperature": 1.0, "features": SETTINGS}
    with pytest.raises(ModelNotFoundError, match="stacking"):
        load_stack(tmp_path, {"stacking": section})  # no stack/ folder
    save_tfidf(_fitted(), tmp_path / STACK_FOLDER)
    stack = load_stack(tmp_path, {"stacking": section})
    assert stack is not None and stack.weight == 0.5
    with pytest.raises(ModelNotFoundError, match="weight"):
        load_stack(tmp_path, {"stacking": {**section, "weight": 1.5}})
    json.dumps(section)  # the section is plain JSON, as the card stores it


def test_the_tfidf_half_scored_by_the_text_stages_mixes_as_it_does_in_the_model() -> None:
    """A stacked scorer handed its companion's predictions, made by another loader of the same folder
    (a text process's), scores as it does making them itself."""
    from pipeline.settings import STUDENT_MODEL
    from workers.scoring.loading import load_scorer
    from workers.scoring.stacking import load_companion

    scorer = load_scorer(STUDENT_MODEL)
    assert scorer.companion is not None and scorer.companion_folder == STUDENT_MODEL  # type: ignore[attr-defined]
    texts = ["服务太差了，再也不来了", "太好吃了！下次还来", "明天几点开门？", "this phone is great", "", "😀"]
    companion = load_companion(STUDENT_MODEL).predict(texts)
    inline, inline_vectors = scorer.predict_with_embeddings(texts)  # type: ignore[attr-defined]
    handed, handed_vectors = scorer.predict_with_embeddings(texts, companion)  # type: ignore[attr-defined]
    assert [p.label for p in handed] == [p.label for p in inline]
    assert np.allclose(as_rows(handed), as_rows(inline)) and np.array_equal(handed_vectors, inline_vectors)


def test_a_folder_without_a_stack_has_no_companion_to_load(tmp_path: Path) -> None:
    from workers.scoring.stacking import load_companion

    (tmp_path / "model.json").write_text(json.dumps({"kind": "transformer"}))
    with pytest.raises(ModelNotFoundError, match="not stacked"):
        load_companion(tmp_path)
