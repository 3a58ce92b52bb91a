"""The scorer interface the workers call, and loading a trained model folder behind it.

A model folder holds ``model.json`` (the model card: id, kind, version, metrics) and the
kind's weights. ``load_scorer`` reads the card's ``kind`` and hands the folder to that kind's
loader: the TF-IDF baseline, or a Transformer (``workers.model.transformer``), which also loads
from a plain Hugging Face folder that has no card.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from pipeline.errors import YuqingError
from schemas.records import Sentiment, SentimentProbabilities

if TYPE_CHECKING:
    from workers.model.options import RuntimeOptions

CARD_FILE = "model.json"
BASELINE_KIND = "baseline-tfidf-lr"
BASELINE_MODEL_ID = "yuqing-baseline-tfidf-lr"
BASELINE_WEIGHTS_FILE = "model.joblib"
TRANSFORMER_KIND = "transformer"
HF_CONFIG_FILE = "config.json"
# Only the start of a text is scored: it bounds the cost per post, and the training texts
# (reviews, news leads, tweets) are almost all shorter than this.
MAX_SCORED_CHARS = 2_000
VERSION_HEX_CHARS = 12
TRAIN_HINT = (
    "the default model, models/student, comes with the code (`git checkout models/student` restores it; "
    "`yuqing model build-base`, then `make teacher student`, rebuilds it); `yuqing model train-baseline` "
    "builds the baseline model; or point YUQING_MODEL_PATH at a model folder"
)


class ModelNotFoundError(YuqingError):
    """The model folder is missing, incomplete or corrupt."""


class Prediction(NamedTuple):
    label: Sentiment
    probabilities: SentimentProbabilities
    embedding: np.ndarray | None = None  # L2-normalised sentence embedding, when the model gives one


class Scorer(Protocol):
    """Scores a batch of texts. Implementations never raise on odd text and are thread-safe."""

    model_id: str
    model_version: str

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


# A text with no evidence (nothing to read, or nothing the model has ever seen) is "unknown",
# with equal probabilities: the model's class prior would pass for an opinion it does not have.
UNKNOWN = Prediction("unknown", SentimentProbabilities(negative=1 / 3, neutral=1 / 3, positive=1 / 3))


def has_signal(text: object) -> bool:
    """True when the text has at least one letter or digit, in any script (emoji alone have none)."""
    return isinstance(text, str) and any(char.isalnum() for char in text)


def prepare(text: str) -> str:
    """The exact form both training and scoring feed to the baseline's vectoriser."""
    return text.strip()[:MAX_SCORED_CHARS]


def weights_version(path: Path) -> str:
    """The short sha256 of a weights file: a new training run gets a new version, a copy keeps it."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:VERSION_HEX_CHARS]


class BaselineScorer:
    """TF-IDF character n-grams + logistic regression (see ``workers.model.baseline``)."""

    def __init__(self, pipeline: Any, model_version: str, model_id: str = BASELINE_MODEL_ID) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self._pipeline = pipeline
        self._vectorizer = pipeline.steps[0][1]
        self._classifier = pipeline.steps[-1][1]
        self._columns = [list(self._classifier.classes_).index(label) for label in ("negative", "neutral", "positive")]
        # scikit-learn does not promise thread-safe inference; the vectoriser is pure Python
        # under the GIL anyway, so serialising costs little and rules out surprises.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        results: list[Prediction] = [UNKNOWN] * len(texts)
        readable = [i for i, text in enumerate(texts) if has_signal(text)]
        if not readable:
            return results
        with self._lock:
            features = self._vectorizer.transform([prepare(texts[i]) for i in readable])
            known = np.asarray(features.getnnz(axis=1)) > 0
            rows = np.flatnonzero(known)
            probabilities = self._classifier.predict_proba(features[rows]) if rows.size else np.empty((0, 3))
        for row, probs in zip(rows, probabilities[:, self._columns], strict=True):
            clipped = np.clip(np.nan_to_num(probs, nan=0.0), 0.0, 1.0)
            if clipped.sum() <= 0:
                continue  # stays UNKNOWN: a degenerate row must not become a confident label
            negative, neutral, positive = (float(p) for p in clipped / clipped.sum())
            label: Sentiment = ("negative", "neutral", "positive")[int(np.argmax(clipped))]
            results[readable[row]] = Prediction(
                label, SentimentProbabilities(negative=negative, neutral=neutral, positive=positive)
            )
        return results


def _load_baseline(folder: Path, card: dict[str, Any], options: RuntimeOptions | None = None) -> Scorer:
    import joblib  # only the baseline kind needs it

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
        scorer = BaselineScorer(pipeline, version, str(card.get("model_id", BASELINE_MODEL_ID)))
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise ModelNotFoundError(f"cannot load {weights}: {exc!r}; {TRAIN_HINT}") from exc
    return scorer


def _load_transformer(folder: Path, card: dict[str, Any], options: RuntimeOptions | None = None) -> Scorer:
    from workers.model.transformer import load_transformer  # torch and transformers load only for this kind

    return load_transformer(folder, card, options)


# Loaders by model-card kind; the runtime options (device, precision, threads) matter to the Transformer only.
_LOADERS: dict[str, Callable[[Path, dict[str, Any], RuntimeOptions | None], Scorer]] = {
    BASELINE_KIND: _load_baseline,
    TRANSFORMER_KIND: _load_transformer,
}


def read_card(path: Path) -> dict[str, Any]:
    """The model card of a model folder, or ModelNotFoundError saying what is wrong."""
    card_path = Path(path) / CARD_FILE
    if not card_path.is_file():
        raise ModelNotFoundError(f"no model at {path} ({CARD_FILE} not found); {TRAIN_HINT}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"unreadable model card {card_path}: {exc}; {TRAIN_HINT}") from exc
    if not isinstance(card, dict):
        raise ModelNotFoundError(f"model card {card_path} is not a JSON object; {TRAIN_HINT}")
    return card


def load_scorer(path: Path, *, options: RuntimeOptions | None = None) -> Scorer:
    """Load the model folder at ``path``; raises ModelNotFoundError if it is missing or corrupt.

    ``options`` (device, precision, threads) default to the process settings. A folder without a card
    but with a Hugging Face config.json loads as a Transformer: any such model folder is servable.
    """
    no_card = not (Path(path) / CARD_FILE).is_file() and (Path(path) / HF_CONFIG_FILE).is_file()
    card = {"kind": TRANSFORMER_KIND} if no_card else read_card(path)
    kind = card.get("kind")
    loader = _LOADERS.get(kind) if isinstance(kind, str) else None
    if loader is None:
        raise ModelNotFoundError(
            f"model card {Path(path) / CARD_FILE} has kind {kind!r}; this yuqing serves: {', '.join(_LOADERS)}"
        )
    return loader(Path(path), card, options)
