"""Score Transformer model folders against the TF-IDF baseline on the test splits (``yuqing model eval``).

The baseline is retrained in the same run on the same train splits (into a temporary folder), so the
comparison never depends on a stale baseline folder. A model "beats the baseline" on a corpus when its
macro-F1 is higher and its accuracy is not lower.

Folders are loaded through ``workers.scoring.loading.load_scorer`` when it serves their kind, exactly as the
workers will; until the Transformer loader is registered there, a local loader reads the folder with
``AutoModelForSequenceClassification`` and the card's ``text_prefix`` and ``max_length``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.model_paths import STUDENT_MODEL, TEACHER_MODEL
from training.corpora import CORPORA, SOCIAL_DIR, SPLIT_SEED, Example, Split, load_corpus
from training.folders import CARD_FILE, corpus_metrics, labels_of, predict_logits, read_json, split_examples

DEFAULT_MODELS = (TEACHER_MODEL, STUDENT_MODEL)
SCORER_CHUNK = 256
SHORT_POST_CHARS = 10

Predict = Callable[[Sequence[str]], list[str]]

if TYPE_CHECKING:
    from workers.scoring.protocol import Prediction, Scorer


def _local_loader(folder: Path, card: dict[str, Any]) -> Predict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
    prefix, max_length = str(card.get("text_prefix", "")), int(card.get("max_length", 128))

    def predict(texts: Sequence[str]) -> list[str]:
        return labels_of(predict_logits(model, tokenizer, [prefix + t for t in texts], max_length))

    return predict


def load_predictor(folder: Path) -> tuple[Predict, dict[str, Any]]:
    """A labels-for-texts function and what was loaded (id, version, which loader)."""
    from workers.scoring.loading import load_scorer
    from workers.scoring.protocol import ModelNotFoundError

    card = read_json(folder / CARD_FILE)
    if card is None:
        raise ModelNotFoundError(f"no model card at {folder / CARD_FILE}")
    info = {"path": str(folder), "model_id": card.get("model_id"), "version": card.get("version")}
    try:
        scorer = load_scorer(folder)
    except ModelNotFoundError as exc:
        # Only "no loader for this kind" falls back; a corrupt folder must fail here, not be papered over.
        if f"has kind {card.get('kind')!r}" not in str(exc):
            raise
        return _local_loader(folder, card), {**info, "loader": "local AutoModelForSequenceClassification"}

    def predict(texts: Sequence[str]) -> list[str]:
        return [str(prediction.label) for prediction in predict_by_length(scorer, texts)]

    return predict, {**info, "loader": "workers.scoring.loading.load_scorer"}


def predict_by_length(scorer: Scorer, texts: Sequence[str]) -> list[Prediction]:
    """``scorer``'s predictions of ``texts``, in their order, scored in chunks of similar length, as the
    workers' batches would be: a chunk pads to its longest text."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predictions: list[Prediction | None] = [None] * len(texts)
    for start in range(0, len(order), SCORER_CHUNK):
        chunk = order[start : start + SCORER_CHUNK]
        for i, prediction in zip(chunk, scorer.predict([texts[i] for i in chunk]), strict=True):
            predictions[i] = prediction
    return [p for p in predictions if p is not None]


def baseline_metrics(tests: list[Example], seed: int, train_limit: int | None) -> dict[str, Any]:
    """Train the TF-IDF baseline on the train splits into a temporary folder and score ``tests``."""
    import joblib

    from training.baseline import evaluate, train_baseline
    from workers.scoring.baseline import BASELINE_WEIGHTS_FILE

    by_corpus: dict[str, list[Example]] = defaultdict(list)
    for example in tests:
        by_corpus[example.corpus].append(example)
    with tempfile.TemporaryDirectory(prefix="yuqing-baseline-") as tmp:
        started = time.perf_counter()
        train_baseline(Path(tmp), seed=seed, limit_per_corpus=train_limit)
        seconds = time.perf_counter() - started
        pipeline = joblib.load(Path(tmp) / BASELINE_WEIGHTS_FILE)
        card = read_json(Path(tmp) / CARD_FILE) or {}
    return {
        "model_id": card.get("model_id"),
        "train_limit_per_corpus": train_limit,
        "train_seconds": round(seconds, 1),
        "metrics": evaluate(pipeline, dict(by_corpus)),
    }


def baseline_leave_one_out(seed: int, train_limit: int | None = None) -> dict[str, Any]:
    """For each corpus, the baseline trained on every other corpus's train split and tested on this one's test
    split: how the recipe does on a domain it never saw."""
    from training.baseline import build_pipeline, evaluate
    from workers.scoring.baseline import prepare

    scores: dict[str, Any] = {}
    for held_out in CORPORA:
        train = split_examples("train", {name: 0 if name == held_out else train_limit for name in CORPORA}, seed)
        pipeline = build_pipeline(seed)
        pipeline.fit([prepare(e.text) for e in train], [e.label for e in train])
        tests = [e for e in load_corpus(held_out) if e.split == "test"]
        scores[held_out] = evaluate(pipeline, {held_out: tests})[held_out]
    return scores


def leave_one_out(card: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any] | None:
    """A model's recipe trained without each corpus (recorded in its card by the recipe that made it) against
    the baseline trained the same way."""
    recipe = card.get("leave_one_out")
    if not recipe:
        return None
    return {"recipe": recipe.get("recipe"), "metrics": compare(recipe["metrics"], baseline)}


def compare(metrics: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in metrics.items():
        base = baseline[name]
        delta_f1 = round(float(values["macro_f1"]) - float(base["macro_f1"]), 4)
        delta_acc = round(float(values["accuracy"]) - float(base["accuracy"]), 4)
        out[name] = {**values, "delta_accuracy": delta_acc, "delta_macro_f1": delta_f1}
        out[name]["beats_baseline"] = delta_f1 > 0 and delta_acc >= 0
    return out


def evaluate_models(
    folders: Sequence[Path],
    seed: int = SPLIT_SEED,
    test_limit_per_corpus: int | None = None,
    baseline_train_limit: int | None = None,
    split: Split = "test",
    with_leave_one_out: bool = True,
) -> dict[str, Any]:
    """Per-corpus accuracy and macro-F1 of each folder and of a freshly trained baseline, on the test splits
    (read once per released model) or the validation (dev) splits, where models are chosen. The baseline's
    leave-one-corpus-out runs, which take longer than the rest, come only with the test splits and can be
    left out."""
    with_leave_one_out = with_leave_one_out and split == "test"
    tests = split_examples(split, test_limit_per_corpus, seed)
    baseline = baseline_metrics(tests, seed, baseline_train_limit)
    baseline["leave_one_out"] = baseline_leave_one_out(seed, baseline_train_limit) if with_leave_one_out else {}
    texts = [e.text for e in tests]
    models = []
    for folder in folders:
        predict, info = load_predictor(Path(folder))
        started = time.perf_counter()
        predicted = predict(texts)
        seconds = time.perf_counter() - started
        metrics = compare(corpus_metrics(tests, predicted), baseline["metrics"])
        phenomena = phenomenon_accuracy(tests, predicted)
        card = read_json(Path(folder) / CARD_FILE) or {}
        models.append(
            {
                **info,
                "texts_per_second": round(len(texts) / seconds, 2),
                "metrics": metrics,
                "social_phenomena": phenomena,
                "leave_one_out": leave_one_out(card, baseline["leave_one_out"]) if with_leave_one_out else None,
            }
        )
    sizes = {name: int(m["n"]) for name, m in baseline["metrics"].items()}
    return {"split": split, "seed": seed, "test_examples": sizes, "baseline": baseline, "models": models}


def social_tags() -> dict[str, tuple[str, ...]]:
    """The phenomena (negation, sarcasm, slang, …) the writers of the social dev and test posts tagged
    each post with, by its text."""
    tags: dict[str, tuple[str, ...]] = {}
    for name in ("dev", "test"):
        for line in (SOCIAL_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            tags[row["text"]] = tuple(row.get("phenomena", ()))
    return tags


def phenomenon_accuracy(tests: Sequence[Example], predicted: Sequence[str]) -> dict[str, dict[str, float]]:
    """Accuracy on the social posts of each tagged phenomenon, and on short posts (at most
    ``SHORT_POST_CHARS`` characters): where a model fails, not just how often."""
    tags = social_tags()
    hits: dict[str, list[bool]] = defaultdict(list)
    for example, label in zip(tests, predicted, strict=True):
        if example.corpus != "social":
            continue
        right = label == example.label
        for tag in tags.get(example.text, ()):
            hits[tag].append(right)
        if len(example.text) <= SHORT_POST_CHARS:
            hits["short"].append(right)
    return {
        tag: {"n": len(found), "accuracy": round(sum(found) / len(found), 4)} for tag, found in sorted(hits.items())
    }


def table(report: dict[str, Any]) -> str:
    """A plain-text summary: one line per model and corpus."""
    lines = [f"{'model':<34} {'corpus':<8} {'acc':>7} {'macroF1':>8}  beats baseline"]
    for name, m in report["baseline"]["metrics"].items():
        lines.append(f"{'baseline (TF-IDF + LR)':<34} {name:<8} {m['accuracy']:>7.4f} {m['macro_f1']:>8.4f}")
    for model in report["models"]:
        label = f"{model['model_id']} ({model['texts_per_second']}/s)"
        for name, m in model["metrics"].items():
            flag = "yes" if m["beats_baseline"] else "no"
            lines.append(f"{label:<34} {name:<8} {m['accuracy']:>7.4f} {m['macro_f1']:>8.4f}  {flag}")
        by_tag = ", ".join(f"{t} {m['accuracy']:.3f} ({m['n']})" for t, m in model["social_phenomena"].items())
        if by_tag:
            lines.append(f"{'':<34} social accuracy by phenomenon: {by_tag}")
    if report["baseline"]["leave_one_out"]:
        lines.append("leave one corpus out (trained without it, tested on it):")
    for name, m in report["baseline"]["leave_one_out"].items():
        lines.append(f"{'baseline (TF-IDF + LR)':<34} {name:<8} {m['accuracy']:>7.4f} {m['macro_f1']:>8.4f}")
    for model in report["models"]:
        for name, m in ((model.get("leave_one_out") or {}).get("metrics") or {}).items():
            flag = "yes" if m["beats_baseline"] else "no"
            lines.append(
                f"{model['model_id'] + ' recipe':<34} {name:<8} {m['accuracy']:>7.4f} {m['macro_f1']:>8.4f}  {flag}"
            )
    return "\n".join(lines)
