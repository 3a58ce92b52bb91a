"""The model card, ``model.json``: what every model folder says about itself (id, kind, version, metrics)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from workers.scoring.protocol import ModelNotFoundError

CARD_FILE = "model.json"
HF_CONFIG_FILE = "config.json"
BASELINE_KIND = "baseline-tfidf-lr"
TRANSFORMER_KIND = "transformer"
VERSION_HEX_CHARS = 12
TRAIN_HINT = (
    "the default model, models/student, comes with the code (`git checkout models/student` restores it; "
    "`yuqing model build-base`, then `make teacher student`, rebuilds it); `yuqing model train-baseline` "
    "builds the baseline model; or point YUQING_MODEL_PATH at a model folder"
)


def weights_version(path: Path) -> str:
    """The short sha256 of a weights file: a new training run gets a new version, a copy keeps it."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:VERSION_HEX_CHARS]


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
