"""Temperature scaling: one scalar T that makes a model's probabilities match how often it is right.

T is fitted on dev data by minimising the negative log-likelihood of softmax(logits / T) over a
log-spaced grid refined by golden-section search (one parameter, so no optimiser state to tune). The
expected calibration error (ECE) is the top-label version: predictions binned by confidence into
``bins`` equal-width bins, and the bin-size-weighted gap between mean confidence and accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

GRID = np.exp(np.linspace(math.log(0.2), math.log(5.0), 41))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probabilities = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(probabilities, 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.2, 5] with the lowest dev NLL."""
    losses = [nll(logits, labels, t) for t in GRID]
    best = int(np.argmin(losses))
    low, high = math.log(GRID[max(best - 1, 0)]), math.log(GRID[min(best + 1, len(GRID) - 1)])
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(logits, labels, math.exp(a)) < nll(logits, labels, math.exp(b)):
            high = b
        else:
            low = a
    return round(math.exp((low + high) / 2), 4)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return round(float(error), 4)


def calibrate_folder(
    folder: Path, limit_per_corpus: int | None = None, max_length: int | None = None
) -> dict[str, Any]:
    """Fit the temperature of a model folder on the validation (dev) splits of every corpus and write it into
    the card as ``calibration``; returns that entry.

    ``max_length`` sets the serving input length first (the card's ``max_length``, which the scorer, the
    stack and eval read), so the temperature is fitted on the inputs the model will see. A student trained
    on short inputs may read long ones better than a cut (long reviews and news state their verdict late)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.folders import CARD_FILE, LABEL2ID, predict_logits, read_json, split_examples, write_card

    card = read_json(folder / CARD_FILE)
    if card is None:
        raise FileNotFoundError(f"no model card at {folder / CARD_FILE}")
    if max_length is not None:
        trained_length = int(card.get("trained_max_length") or card["max_length"])
        card = {**card, "max_length": max_length, "trained_max_length": trained_length}
    dev = split_examples("validation", limit_per_corpus)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    prefix = str(card.get("text_prefix", ""))
    logits = predict_logits(model, tokenizer, [prefix + e.text for e in dev], int(card["max_length"]))
    labels = np.array([LABEL2ID[e.label] for e in dev])
    temperature = fit_temperature(logits, labels)
    entry = {
        "temperature": temperature,
        "fitted_on": f"validation (dev) splits of every corpus, {len(dev)} texts",
        "dev_nll_before": round(nll(logits, labels, 1.0), 4),
        "dev_nll_after": round(nll(logits, labels, temperature), 4),
        "dev_ece_before": expected_calibration_error(softmax(logits), labels),
        "dev_ece_after": expected_calibration_error(softmax(logits, temperature), labels),
        "ece_bins": 15,
        "max_length": int(card["max_length"]),
    }
    write_card(folder, {**card, "calibration": entry})
    return entry
