"""The Transformer scorer: 3-class sentiment and a sentence embedding from one forward pass.

Loads any folder that follows the model-folder contract (``workers.scoring.hf_folder``). Each call pads
to its own longest text (the runtime groups texts of similar length, so padding stays small), truncates
at the folder's ``max_length`` and runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from schemas.records import SentimentProbabilities
from workers.scoring.hf_folder import BUILD_HINT, SENTIMENTS, FolderSpec, read_spec
from workers.scoring.native_memory import bound_kernel_caches
from workers.scoring.options import (
    Resolved,
    RuntimeOptions,
    apply_threads,
    resolve_device,
    resolve_precision,
    torch_dtype,
)
from workers.scoring.protocol import UNKNOWN, ModelNotFoundError, Prediction, has_signal_or_emoji
from workers.scoring.stacking import TfidfStack, load_stack

log = logging.getLogger(__name__)

# Real text runs well under 8 characters per token (e5: ~1.4 per CJK character, ~4-5 in English),
# so cutting a text at 8 × max_length characters leaves what truncation keeps unchanged, while a
# 1 MB post costs no more to tokenise than a long one.
CHARS_PER_TOKEN_BOUND = 8
# Token estimate for batching, least-squares fitted on 4,100 synthetic-feed and corpus texts with the e5
# tokenizer (median ratio to the real count 1.00, 90% within 0.83-1.19): ~0.7 tokens per CJK character,
# and for other text ~0.7 per whitespace-separated run plus ~0.2 per character of it.
CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff]")
OTHER_RUN = re.compile(r"[^\s\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\u3040-\u30ff]+")
CJK_TOKENS, RUN_TOKENS, RUN_CHAR_TOKENS = 0.72, 0.69, 0.21
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")


class UntrainedHeadError(ModelNotFoundError):
    """The folder holds a base model: its classifier weights would be random."""


def _clean(text: str, limit: int) -> str:
    # A lone surrogate cannot become UTF-8, which the Rust tokenizer needs: replace it, never raise.
    return text.strip()[:limit].encode("utf-8", "replace").decode("utf-8")


class TransformerScorer:
    """Implements the ``Scorer`` protocol; also ``embed`` and ``predict_with_embeddings``. Thread-safe."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        spec: FolderSpec,
        device: torch.device,
        precision: Resolved,
        parameter_counts: dict[str, int] | None = None,
        stack: TfidfStack | None = None,
        folder: Path | None = None,
    ) -> None:
        self.model_id = spec.model_id
        self.model_version = spec.version if stack is None else f"{spec.version}+{stack.version}"
        self.stack = stack
        self.companion = stack.tfidf if stack is not None else None
        # Where a text process loads the TF-IDF half from (``load_companion``), to score it off this process.
        self.companion_folder = folder if stack is not None else None
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.precision = precision
        self.max_length = spec.max_length
        config: Any = model.config
        # Counted before any quantisation, which hides the linear weights from ``parameters()``.
        self.parameter_counts = parameter_counts or count_parameters(model)
        self.hidden_size = int(config.hidden_size)
        self._overhead = len(tokenizer(spec.text_prefix)["input_ids"]) if spec.text_prefix else 2
        # One forward at a time: the fast tokenizer refuses concurrent use, and parallel forwards on one
        # device only contend for the same cores or stream.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.predict_with_embeddings(texts)[0]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 (n, hidden); a text without signal gets a zero row."""
        return self.predict_with_embeddings(texts)[1]

    def estimate_tokens(self, text: str) -> int:
        """A cheap guess of the model tokens of ``text`` (prefix and special tokens included), for batching."""
        if not isinstance(text, str):
            return self._overhead
        clipped = text[: self.max_length * CHARS_PER_TOKEN_BOUND]
        runs = OTHER_RUN.findall(clipped)
        guess = CJK_TOKENS * len(CJK.findall(clipped)) + RUN_TOKENS * len(runs) + RUN_CHAR_TOKENS * sum(map(len, runs))
        return min(self._overhead + math.ceil(guess), self.max_length)

    def predict_with_embeddings(
        self, texts: Sequence[str], companion: Sequence[Prediction] | None = None
    ) -> tuple[list[Prediction], np.ndarray]:
        results: list[Prediction] = [UNKNOWN] * len(texts)
        vectors = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        readable = [i for i, text in enumerate(texts) if has_signal_or_emoji(text)]
        if not readable:
            return results, vectors
        limit = self.max_length * CHARS_PER_TOKEN_BOUND
        batch = [self.spec.text_prefix + _clean(texts[i], limit) for i in readable]
        with self._lock:
            probabilities, pooled = self._forward(batch)
        vectors[readable] = pooled
        for row, index in enumerate(readable):
            results[index] = self._prediction(probabilities[row])
        if self.stack is not None:
            results = self.stack.mix(texts, results) if companion is None else self.stack.mix_with(results, companion)
        return results, vectors

    @torch.inference_mode()
    def _forward(self, batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.tokenizer(
            batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        output = self.model(**encoded, output_hidden_states=True)
        probabilities = (output.logits.float() / self.spec.temperature).softmax(dim=-1)
        hidden = output.hidden_states[-1].float()
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        # An overflowed row (fp16) becomes a zero vector and, below, "unknown": never NaN downstream.
        return probabilities.cpu().numpy(), np.nan_to_num(pooled.cpu().numpy(), nan=0.0)

    def _prediction(self, row: np.ndarray) -> Prediction:
        ours = np.array([row[c] if c is not None else 0.0 for c in self.spec.columns], dtype=np.float64)
        ours = np.clip(np.nan_to_num(ours, nan=0.0), 0.0, 1.0)
        if ours.sum() <= 0:
            return UNKNOWN  # a degenerate row (fp16 overflow, say) must not become a confident label
        negative, neutral, positive = (float(p) for p in ours / ours.sum())
        return Prediction(
            SENTIMENTS[int(np.argmax(ours))],
            SentimentProbabilities(negative=negative, neutral=neutral, positive=positive),
        )


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """All parameters, and those of the embedding layer (which cost lookups, not FLOPs)."""
    base: Any = getattr(model, "base_model", model)
    embeddings = getattr(base, "embeddings", None)
    if not isinstance(embeddings, torch.nn.Module):
        embeddings = base.get_input_embeddings()
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "embedding": sum(p.numel() for p in embeddings.parameters()),
    }


def _load_config(folder: Path) -> Any:
    if not folder.is_dir():
        raise ModelNotFoundError(f"no model at {folder} (folder not found); {BUILD_HINT}")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {folder} has no config.json; {BUILD_HINT}")
    try:
        return AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds on a broken config
        raise ModelNotFoundError(f"unreadable config.json in {folder}: {exc}; {BUILD_HINT}") from exc


def _load_tokenizer(folder: Path) -> Any:
    # Without vocabulary files transformers 5 quietly builds an empty tokenizer that maps every word to
    # the unknown token; a folder must bring its own vocabulary.
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelNotFoundError(f"model folder {folder} has no tokenizer (none of {TOKENIZER_FILES}); {BUILD_HINT}")
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as exc:
        raise ModelNotFoundError(f"cannot load the tokenizer in {folder}: {exc}; {BUILD_HINT}") from exc


def load_transformer(
    folder: Path,
    card: Mapping[str, Any] | None = None,
    options: RuntimeOptions | None = None,
    *,
    random_head: bool = False,
) -> TransformerScorer:
    """Load a model folder; ``random_head`` accepts a folder without a trained classifier (benchmarks only).

    ``options`` default to the process settings (``YUQING_DEVICE``, ``YUQING_PRECISION``, …).
    """
    if options is None:
        from pipeline.settings import get_settings

        options = RuntimeOptions.from_settings(get_settings())
    folder, card = Path(folder), dict(card or {})
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    apply_threads(options.torch_threads)
    bound_kernel_caches()
    config = _load_config(folder)
    architectures = list(getattr(config, "architectures", None) or [])
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures) and not random_head:
        # Said up front: its config's default LABEL_0/LABEL_1 would otherwise fail with a misleading label error.
        raise UntrainedHeadError(
            f"{folder} holds a base model ({', '.join(architectures)}), not a classifier; {BUILD_HINT}"
        )
    names = card.get("labels") or options.labels
    if names:  # the head is built with as many classes as there are names
        config.num_labels = len(names)
    spec = read_spec(folder, card, config, options.labels)
    tokenizer = _load_tokenizer(folder)
    spec = replace(spec, max_length=min(spec.max_length, int(tokenizer.model_max_length)))
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            folder, config=config, dtype=torch_dtype(precision), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:  # a truncated safetensors file or a head of the wrong shape
        raise ModelNotFoundError(f"cannot load the model in {folder}: {exc}; {BUILD_HINT}") from exc
    # Missing embedding buffers (position ids) are rebuilt by transformers; any other missing weight is random.
    untrained = sorted(key for key in info["missing_keys"] if "embeddings" not in key)
    if untrained and not random_head:
        raise UntrainedHeadError(
            f"model in {folder} lacks trained weights {untrained[:4]} (a base model, not a classifier); {BUILD_HINT}"
        )
    model.eval()
    counts = count_parameters(model)
    if precision == "int8":
        with warnings.catch_warnings():  # torch.ao.quantization announces its own deprecation
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    model.to(device)
    scorer = TransformerScorer(model, tokenizer, spec, device, precision, counts, load_stack(folder, card), folder)
    log.info("loaded model %s version %s on %s in %s", spec.model_id, scorer.model_version, device, precision)
    return scorer
