"""Stacking a Transformer with the TF-IDF baseline: the two models' probabilities mixed in log space.

A card's ``stacking`` section names a folder of TF-IDF arrays beside the weights and the mix fitted on
dev by ``yuqing model stack``: p ∝ (p_transformer^(1-w) · p_tfidf^w)^(1/T). Character n-grams catch
what a small Transformer misses on short posts, and the Transformer reads what n-grams cannot (negation,
emoji, word order); the mix only ever sees texts that both models can read, the Transformer alone the rest.

The TF-IDF half is stored as plain arrays (vocabulary, idf, coefficients), not a pickle, so a committed
default model loads with any scikit-learn and runs no code from the file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schemas.records import SentimentProbabilities
from workers.scoring.baseline import BaselineScorer
from workers.scoring.cards import read_card
from workers.scoring.hf_folder import SENTIMENTS
from workers.scoring.protocol import ModelNotFoundError, Prediction

STACK_FOLDER = "stack"
ARRAYS_FILE = "tfidf.safetensors"
VOCABULARY_FILE = "tfidf_vocabulary.json.gz"
FLOOR = 1e-6  # a probability of 0 would veto the other model outright


def mixed_logits(transformer: np.ndarray, tfidf: np.ndarray, weight: float) -> np.ndarray:
    """Rows of (negative, neutral, positive) probabilities mixed in log space."""
    return np.asarray(
        (1 - weight) * np.log(np.clip(transformer, FLOOR, 1.0)) + weight * np.log(np.clip(tfidf, FLOOR, 1.0))
    )


def mix_probabilities(transformer: np.ndarray, tfidf: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """The mixed rows as probabilities, tempered."""
    scaled = mixed_logits(transformer, tfidf, weight) / temperature
    exp = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def as_rows(predictions: Sequence[Prediction]) -> np.ndarray:
    return np.array(
        [[p.probabilities.negative, p.probabilities.neutral, p.probabilities.positive] for p in predictions]
    )


@dataclass(frozen=True)
class TfidfStack:
    """The TF-IDF half of a stacked model and the mix fitted on dev."""

    tfidf: BaselineScorer
    weight: float
    temperature: float
    version: str

    def mix(self, texts: Sequence[str], predictions: list[Prediction]) -> list[Prediction]:
        """The Transformer's ``predictions`` of ``texts``, mixed with TF-IDF's where both read the text."""
        return self.mix_with(predictions, self.tfidf.predict(texts))

    def mix_with(self, predictions: list[Prediction], tfidf: Sequence[Prediction]) -> list[Prediction]:
        """The Transformer's ``predictions`` mixed with ``tfidf``, the TF-IDF half's of the same texts."""
        both = [
            i for i, (a, b) in enumerate(zip(predictions, tfidf, strict=True)) if "unknown" not in (a.label, b.label)
        ]
        if not both:
            return predictions
        mixed = mix_probabilities(
            as_rows([predictions[i] for i in both]), as_rows([tfidf[i] for i in both]), self.weight, self.temperature
        )
        out = list(predictions)
        for i, row in zip(both, mixed, strict=True):
            negative, neutral, positive = (float(p) for p in row)
            out[i] = predictions[i]._replace(
                label=SENTIMENTS[int(np.argmax(row))],
                probabilities=SentimentProbabilities(negative=negative, neutral=neutral, positive=positive),
            )
        return out


def save_tfidf(pipeline: Any, folder: Path) -> None:
    """Write a fitted TF-IDF + logistic-regression pipeline (``training.baseline``) as plain arrays."""
    from safetensors.numpy import save_file

    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    order = [list(classifier.classes_).index(label) for label in SENTIMENTS]
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    # mtime=0: the same model gives the same bytes, hence the same version.
    packed = gzip.compress(json.dumps(vocabulary, ensure_ascii=False).encode(), compresslevel=9, mtime=0)
    (folder / VOCABULARY_FILE).write_bytes(packed)
    # Half precision halves the committed size; the mix is fitted on the arrays as stored.
    arrays: dict[str, np.ndarray] = {
        "idf": np.asarray(vectorizer.idf_, dtype=np.float16),
        "coef": np.ascontiguousarray(classifier.coef_[order], dtype=np.float16),
        "intercept": np.asarray(classifier.intercept_[order], dtype=np.float32),
    }
    save_file(arrays, str(folder / ARRAYS_FILE))
    (folder / ARRAYS_FILE).chmod(0o644)  # safetensors writes 0600; model folders are read by other users


def load_tfidf(folder: Path, features: Mapping[str, Any]) -> Any:
    """The pipeline ``save_tfidf`` wrote, rebuilt with the vectoriser settings it was trained with."""
    from safetensors.numpy import load_file
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    arrays = {name: array.astype(np.float32) for name, array in load_file(str(folder / ARRAYS_FILE)).items()}
    vocabulary = json.loads(gzip.decompress((folder / VOCABULARY_FILE).read_bytes()))
    settings = {**features, "ngram_range": tuple(features["ngram_range"])}
    vectorizer = TfidfVectorizer(
        **settings, vocabulary={term: i for i, term in enumerate(vocabulary)}, dtype=np.float32
    )
    vectorizer.idf_ = arrays["idf"]
    classifier = LogisticRegression()
    classifier.classes_ = np.array(SENTIMENTS)
    classifier.coef_, classifier.intercept_ = arrays["coef"], arrays["intercept"]
    return Pipeline([("tfidf", vectorizer), ("logreg", classifier)])


def stack_version(folder: Path, section: Mapping[str, Any]) -> str:
    """Changes with the TF-IDF arrays and with the mix, so posts scored by another stack tell apart."""
    digest = hashlib.sha256()
    for name in (ARRAYS_FILE, VOCABULARY_FILE):
        digest.update((folder / name).read_bytes())
    digest.update(f"{section['weight']}:{section['temperature']}".encode())
    return digest.hexdigest()[:8]


def load_stack(folder: Path, card: Mapping[str, Any]) -> TfidfStack | None:
    """The stack a card names, or None for a plain Transformer."""
    section = card.get("stacking")
    if not section:
        return None
    stack_folder = folder / STACK_FOLDER
    try:
        pipeline = load_tfidf(stack_folder, section["features"])
        version = stack_version(stack_folder, section)
    except (OSError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise ModelNotFoundError(
            f"model at {folder}: its stacking section or {stack_folder} is unusable: {exc!r}"
        ) from exc
    weight, temperature = float(section["weight"]), float(section["temperature"])
    if not (0 <= weight <= 1 and 0.05 <= temperature <= 20):
        raise ModelNotFoundError(
            f"model at {folder}: stacking weight {weight} or temperature {temperature} out of range"
        )
    return TfidfStack(BaselineScorer(pipeline, version, "tfidf"), weight, temperature, version)


def load_companion(folder: Path) -> BaselineScorer:
    """The TF-IDF half of the stacked model at ``folder``, for a process that scores it apart from the
    Transformer (the text processes)."""
    stack = load_stack(folder, read_card(folder))
    if stack is None:
        raise ModelNotFoundError(f"model at {folder} is not stacked: its card has no stacking section")
    return stack.tfidf
