"""Fit the stack of a Transformer folder and the TF-IDF baseline on dev (``yuqing model stack``).

The mix weight w is chosen on the validation (dev) splits by the project's selection score (the mean of
the corpora's macro-F1), over a grid; the temperature of the mix is then fitted on the same splits, as
``yuqing model calibrate`` does for a single model. The baseline's arrays are copied into the folder's
``stack/`` and the card gets a ``stacking`` section, so the folder serves the stack on its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.calibration import expected_calibration_error, fit_temperature, nll, softmax
from training.corpora import SPLIT_SEED, Example
from training.evaluate import predict_by_length
from training.folders import CARD_FILE, LABEL2ID, corpus_metrics, mean_macro_f1, read_json, split_examples, write_card

if TYPE_CHECKING:
    from workers.scoring.protocol import Scorer

WEIGHTS = tuple(round(w, 2) for w in np.arange(0.0, 1.0001, 0.05))


def _probabilities(scorer: Scorer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(negative, neutral, positive) rows and whether the model read each text."""
    from workers.scoring.stacking import as_rows

    predictions = predict_by_length(scorer, texts)
    return as_rows(predictions), np.array([p.label != "unknown" for p in predictions])


def _labels(transformer: np.ndarray, tfidf: np.ndarray, both: np.ndarray, weight: float) -> list[str]:
    from workers.scoring.hf_folder import SENTIMENTS
    from workers.scoring.stacking import mix_probabilities

    mixed = transformer.copy()
    mixed[both] = mix_probabilities(transformer[both], tfidf[both], weight, 1.0)
    return [SENTIMENTS[i] for i in mixed.argmax(axis=1)]


def fit_stack(
    folder: Path, baseline: Path, limit_per_corpus: int | None = None, seed: int = SPLIT_SEED
) -> dict[str, Any]:
    """Choose the mix on dev, write ``folder/stack/`` and the card's ``stacking``; returns that section."""
    import joblib

    from training.baseline import FEATURES
    from workers.scoring.baseline import BASELINE_WEIGHTS_FILE, BaselineScorer
    from workers.scoring.stacking import STACK_FOLDER, load_tfidf, mixed_logits, save_tfidf
    from workers.scoring.transformer import load_transformer

    card, baseline_card = read_json(folder / CARD_FILE), read_json(baseline / CARD_FILE)
    if card is None or baseline_card is None:
        raise FileNotFoundError(f"no model card in {folder} or {baseline}")
    plain = {key: value for key, value in card.items() if key != "stacking"}
    dev: list[Example] = split_examples("validation", limit_per_corpus, seed)
    texts = [e.text for e in dev]
    staged = folder / f"{STACK_FOLDER}.new"
    shutil.rmtree(staged, ignore_errors=True)
    save_tfidf(joblib.load(baseline / BASELINE_WEIGHTS_FILE), staged)
    pipeline = load_tfidf(staged, FEATURES)  # the arrays as stored, in half precision
    transformer, known = _probabilities(load_transformer(folder, plain), texts)
    tfidf, tfidf_known = _probabilities(BaselineScorer(pipeline, str(baseline_card["version"])), texts)
    both = known & tfidf_known
    scores = {w: mean_macro_f1(corpus_metrics(dev, _labels(transformer, tfidf, both, w))) for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: (scores[w], -w))  # ties go to the lighter TF-IDF share

    labels = np.array([LABEL2ID[e.label] for e in dev])[both]
    logits = mixed_logits(transformer[both], tfidf[both], weight)
    temperature = fit_temperature(logits, labels)
    section = {
        "weight": weight,
        "temperature": temperature,
        "features": {**FEATURES, "ngram_range": list(FEATURES["ngram_range"])},
        "baseline": {"model_id": baseline_card.get("model_id"), "version": baseline_card.get("version")},
        "chosen_on": f"validation (dev) splits of every corpus, {len(dev)} texts, by mean per-corpus macro-F1",
        "dev_mean_macro_f1_by_weight": {str(w): s for w, s in scores.items()},
        "dev_transformer_alone": corpus_metrics(dev, _labels(transformer, tfidf, both, 0.0)),
        "dev_stacked": corpus_metrics(dev, _labels(transformer, tfidf, both, weight)),
        "dev_texts_both_read": int(both.sum()),
        "dev_nll_before": round(nll(logits, labels, 1.0), 4),
        "dev_nll_after": round(nll(logits, labels, temperature), 4),
        "dev_ece_before": expected_calibration_error(softmax(logits), labels),
        "dev_ece_after": expected_calibration_error(softmax(logits, temperature), labels),
    }
    shutil.rmtree(folder / STACK_FOLDER, ignore_errors=True)
    staged.rename(folder / STACK_FOLDER)
    write_card(folder, {**plain, "stacking": section})
    return section
