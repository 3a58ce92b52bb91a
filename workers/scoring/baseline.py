"""The TF-IDF baseline's scorer: character n-grams and logistic regression (trained by ``training.baseline``).

Its folder is a joblib pickle, read with the ``train`` extra. A stacked Transformer (``stacking.py``) serves the
same scorer over plain arrays instead, with scikit-learn alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from schemas.records import Sentiment, SentimentProbabilities
from workers.scoring.cards import TRAIN_HINT, weights_version
from workers.scoring.protocol import UNKNOWN, ModelNotFoundError, Prediction, has_signal

BASELINE_MODEL_ID = "yuqing-baseline-tfidf-lr"
BASELINE_WEIGHTS_FILE = "model.joblib"
# Only the start of a text is scored: it bounds the cost per post, and the training texts
# (reviews, news leads, tweets) are almost all shorter than this.
MAX_SCORED_CHARS = 2_000
INSTALL_HINT = "the TF-IDF baseline's folder needs joblib: pip install 'yuqing[train]'"


def prepare(text: str) -> str:
    """The exact form both training and scoring feed to the baseline's vectoriser."""
    return text.strip()[:MAX_SCORED_CHARS]


class BaselineScorer:
    """Implements ``Scorer`` over a fitted scikit-learn pipeline (vectoriser, then classifier)."""

    def __init__(self, pipeline: Any, model_version: str, model_id: str = BASELINE_MODEL_ID) -> None:
        self.model_id = model_id
        self.model_version = model_version
        # Imported here: scikit-learn and scipy load only in a process that serves a TF-IDF model.
        from workers.scoring.char_ngrams import NgramFeatures

        self._vectorizer = pipeline.steps[0][1]
        self._features = NgramFeatures.of(self._vectorizer)  # scikit-learn's features, in numpy
        self._classifier = pipeline.steps[-1][1]
        self._columns = [list(self._classifier.classes_).index(label) for label in ("negative", "neutral", "positive")]
        # scikit-learn does not promise thread-safe inference: serialising rules out surprises.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        results: list[Prediction] = [UNKNOWN] * len(texts)
        readable = [i for i, text in enumerate(texts) if has_signal(text)]
        if not readable:
            return results
        with self._lock:
            prepared = [prepare(texts[i]) for i in readable]
            features = (self._features or self._vectorizer).transform(prepared)
            known = np.asarray(features.getnnz(axis=1)) > 0
            rows = np.flatnonzero(known)
            probabilities = self._classifier.predict_proba(features[rows]) if rows.size else np.empty((0, 3))
        # Whole-batch arithmetic: numpy calls per row cost more than the classifier.
        clipped = np.clip(np.nan_to_num(probabilities[:, self._columns], nan=0.0), 0.0, 1.0)
        totals = clipped.sum(axis=1)
        shares = clipped / np.where(totals > 0, totals, 1.0)[:, None]
        labels = np.argmax(clipped, axis=1)
        for row, total, (negative, neutral, positive), best in zip(
            rows.tolist(), totals.tolist(), shares.tolist(), labels.tolist(), strict=True
        ):
            if total <= 0:
                continue  # stays UNKNOWN: a degenerate row must not become a confident label
            label: Sentiment = ("negative", "neutral", "positive")[best]
            results[readable[row]] = Prediction(
                label, SentimentProbabilities(negative=negative, neutral=neutral, positive=positive)
            )
        return results


def load_baseline(folder: Path, card: dict[str, Any]) -> BaselineScorer:
    try:
        import joblib
    except ImportError as exc:
        raise ModelNotFoundError(f"cannot serve {folder}: {INSTALL_HINT}") from exc
    weights = folder / BASELINE_WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"model folder {folder} has no {BASELINE_WEIGHTS_FILE}; {TRAIN_HINT}")
    version = weights_version(weights)
    if version != card.get("version"):
        raise ModelNotFoundError(
            f"{weights} does not match its model card (sha256 {version}, card says {card.get('version')!r}): "
            f"the folder is corrupt or half-written; {TRAIN_HINT}"
        )
    try:
        # joblib unpickles: only load model folders this deployment trained or trusts.
        pipeline = joblib.load(weights)
        return BaselineScorer(pipeline, version, str(card.get("model_id", BASELINE_MODEL_ID)))
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ModelNotFoundError(f"cannot load {weights}: {exc!r}; {TRAIN_HINT}") from exc
