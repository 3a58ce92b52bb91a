"""What a scorer is: a batch of texts in, one result per text out, and the abilities some scorers add."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import numpy as np

from pipeline.errors import YuqingError
from schemas.records import Sentiment, SentimentProbabilities

if TYPE_CHECKING:
    from pathlib import Path

    import torch


class ModelNotFoundError(YuqingError):
    """The model folder is missing, incomplete or corrupt."""


class Prediction(NamedTuple):
    label: Sentiment
    probabilities: SentimentProbabilities
    embedding: np.ndarray | None = None  # L2-normalised sentence embedding, when the model gives one


@dataclass(frozen=True)
class Unscored:
    """A text the model failed on, and why: it goes to the dead-letter topic, never into the counts."""

    reason: str


ScoreResult = Prediction | Unscored

# A text with no evidence (nothing to read, or nothing the model has ever seen) is "unknown",
# with equal probabilities: the model's class prior would pass for an opinion it does not have.
UNKNOWN = Prediction("unknown", SentimentProbabilities(negative=1 / 3, neutral=1 / 3, positive=1 / 3))


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of texts. Implementations never raise on odd text and are thread-safe."""

    model_id: str
    model_version: str

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


@runtime_checkable
class EstimatesTokens(Scorer, Protocol):
    """A scorer that can guess a text's model tokens cheaply, so calls can be bounded by tokens."""

    def estimate_tokens(self, text: str) -> int: ...


@runtime_checkable
class Embeds(Scorer, Protocol):
    """A scorer that also gives sentence embeddings, from the same forward pass (subject matching).

    A stacked model names its companion (its TF-IDF half) and the folder it loads from, so that the
    text stages can score it, in this process or theirs; ``predict_with_embeddings`` then takes those
    predictions (``companion``), and makes them itself without them."""

    companion: Scorer | None
    companion_folder: Path | None

    def predict_with_embeddings(
        self, texts: Sequence[str], companion: Sequence[Prediction] | None = None
    ) -> tuple[list[Prediction], np.ndarray]: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class RunsOnDevice(Scorer, Protocol):
    """A scorer on a torch device, in a precision: the runtime sizes its calls for it."""

    device: torch.device
    precision: str
    parameter_counts: dict[str, int]


def has_signal(text: object) -> bool:
    """True when the text has at least one letter or digit, in any script (emoji alone have none)."""
    return isinstance(text, str) and any(char.isalnum() for char in text)


def has_signal_or_emoji(text: object) -> bool:
    """``has_signal``, or a pictographic symbol (emoji and the like, Unicode category So): a Transformer
    reads "👍" and "😡", which carry sentiment on their own, where n-gram features have nothing."""
    return has_signal(text) or (isinstance(text, str) and any(unicodedata.category(c) == "So" for c in text))
