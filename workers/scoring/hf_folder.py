"""What a Hugging Face model folder says about itself: labels, version, length limit, prefix.

The model-folder contract: a folder loadable offline by ``AutoModelForSequenceClassification`` and
``AutoTokenizer``, plus an optional ``model.json`` card (kind "transformer", model_id, version = short
sha256 of the weights, labels, max_length, text_prefix). Without a card a folder still loads by its
config, so a user can bring any fine-tuned sentiment model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.records import Sentiment
from workers.scoring.cards import CARD_FILE, VERSION_HEX_CHARS, weights_version
from workers.scoring.protocol import ModelNotFoundError

BUILD_HINT = (
    "build one with `yuqing model build-base` then `yuqing model train`, "
    "or point YUQING_MODEL_PATH at a Hugging Face sequence-classification folder"
)
WEIGHTS_FILE = "model.safetensors"
MAX_TOKENS = 512  # the encoders we serve were pretrained on at most 512 positions
SENTIMENTS: tuple[Sentiment, Sentiment, Sentiment] = ("negative", "neutral", "positive")
# Names seen in public sentiment checkpoints, compared after lower-casing and dropping separators.
ALIASES: dict[str, Sentiment] = {
    **dict.fromkeys(["negative", "neg", "bad", "负面", "消极", "负向", "差评"], "negative"),
    **dict.fromkeys(["neutral", "neu", "neut", "中性", "中立"], "neutral"),
    **dict.fromkeys(["positive", "pos", "good", "正面", "积极", "正向", "好评"], "positive"),
}
GENERIC_NAME = re.compile(r"label_?\d+")


@dataclass(frozen=True)
class FolderSpec:
    """Everything the scorer needs besides the weights, read from the card or derived from the folder."""

    model_id: str
    version: str
    class_names: tuple[str, ...]
    # For each of negative, neutral, positive: the model's class index, or None if the model lacks it.
    columns: tuple[int | None, int | None, int | None]
    max_length: int
    text_prefix: str
    # Logits are divided by it before the softmax: fitted on dev data (the card's "calibration"), it makes
    # the probabilities mean what they say; the argmax, hence the sentiment, is the same at any value.
    temperature: float = 1.0


def sentiment_of(name: object) -> Sentiment | None:
    key = re.sub(r"[\s_\-.]+", "", str(name).strip().lower())
    return ALIASES.get(key)


def map_labels(names: Sequence[str], folder: Path) -> tuple[int | None, int | None, int | None]:
    """Model class index per sentiment. Every class must name a distinct sentiment; a model without a
    neutral class (many binary review models) is accepted and never says neutral."""
    found = [sentiment_of(name) for name in names]
    problem = ""
    if any(GENERIC_NAME.fullmatch(str(name).strip().lower()) for name in names):
        problem = "generic names need a mapping: add labels to model.json or set YUQING_MODEL_LABELS"
    elif None in found:
        problem = f"unrecognised: {[n for n, s in zip(names, found, strict=True) if s is None]}"
    elif len(set(found)) != len(found):
        problem = "two classes name the same sentiment"
    elif "negative" not in found or "positive" not in found:
        problem = "both a negative and a positive class are needed"
    if problem:
        raise ModelNotFoundError(
            f"model at {folder} has labels {list(names)}, which do not map onto negative/neutral/positive "
            f"({problem}); {BUILD_HINT}"
        )
    index = {sentiment: i for i, sentiment in enumerate(found)}
    return index.get("negative"), index.get("neutral"), index.get("positive")


def weights_files(folder: Path) -> list[Path]:
    """The weights transformers will load: one file, or the shards of one checkpoint (never stray extras)."""
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    files = sorted(folder.glob("model-*-of-*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ModelNotFoundError(f"model folder {folder} holds no weights (*.safetensors); {BUILD_HINT}")
    return files


def folder_version(files: Sequence[Path]) -> str:
    """The short sha256 of the weights: of the one file (the card's contract), or of all shards in order."""
    if len(files) == 1:
        return weights_version(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(weights_version(path).encode())
    return digest.hexdigest()[:VERSION_HEX_CHARS]


def _config_names(config: Any) -> list[str]:
    id2label: Mapping[Any, str] = getattr(config, "id2label", None) or {}
    count = int(getattr(config, "num_labels", len(id2label)))
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)]


def read_spec(folder: Path, card: Mapping[str, Any], config: Any, labels: Sequence[str] | None) -> FolderSpec:
    """Card first, then the runtime's label mapping, then the folder's own config.

    Read before the (slow) tokenizer loads, so a wrong folder fails fast; the loader then lowers
    ``max_length`` to the tokenizer's own limit.
    """
    names = [str(n) for n in card.get("labels") or labels or _config_names(config)]
    count = int(getattr(config, "num_labels", len(names)))
    if len(names) != count:
        raise ModelNotFoundError(f"model at {folder}: {len(names)} label names {names} for a {count}-class head")
    files = weights_files(folder)
    version = folder_version(files)
    stated = card.get("version")
    if stated is not None and stated != version:
        raise ModelNotFoundError(
            f"weights in {folder} do not match {CARD_FILE} (sha256 {version}, card says {stated!r}): "
            f"the folder is corrupt or half-written; {BUILD_HINT}"
        )
    positions = int(getattr(config, "max_position_embeddings", MAX_TOKENS))
    limit = min(int(card.get("max_length") or MAX_TOKENS), MAX_TOKENS, positions)
    prefix = card.get("text_prefix", "")
    return FolderSpec(
        model_id=str(card.get("model_id") or folder.resolve().name),
        version=version,
        class_names=tuple(names),
        columns=map_labels(names, folder),
        max_length=limit,
        text_prefix=prefix if isinstance(prefix, str) else "",
        temperature=_temperature(card, folder),
    )


def _temperature(card: Mapping[str, Any], folder: Path) -> float:
    value = (card.get("calibration") or {}).get("temperature", 1.0)
    if not isinstance(value, int | float) or not 0.05 <= value <= 20:
        raise ModelNotFoundError(f"model at {folder}: calibration temperature {value!r} is not a number in [0.05, 20]")
    return float(value)
