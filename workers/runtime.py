"""Runs a scorer off the event loop, in calls bounded by items and tokens, and keeps batch statistics."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.observability import metrics
from workers.batching import plan_model_calls
from workers.scoring.native_memory import heap_trimmer
from workers.scoring.protocol import (
    Embeds,
    EstimatesTokens,
    Prediction,
    RunsOnDevice,
    Scorer,
    ScoreResult,
    Unscored,
)

log = logging.getLogger(__name__)
# Tokens per model call when the setting is 0 (auto). On a CPU a Transformer scores fastest in calls of a
# few dozen posts, while a GPU and the TF-IDF baseline want large calls (`yuqing bench model`,
# docs/benchmarks.md).
CALL_TOKENS_CPU_TRANSFORMER = 4_096
CALL_TOKENS_LARGE = 32_768


def call_token_budget(configured: int, scorer: Scorer) -> int:
    """``configured`` when set, else the budget that suits the scorer and the device it runs on."""
    if configured:
        return configured
    return CALL_TOKENS_CPU_TRANSFORMER if _on_cpu(scorer) else CALL_TOKENS_LARGE


def _on_cpu(scorer: Scorer) -> bool:
    """Whether ``scorer`` is a Transformer (a model that runs on a device) running on the CPU."""
    return isinstance(scorer, RunsOnDevice) and scorer.device.type == "cpu"


@dataclass
class BatchStats:
    batches: int = 0
    posts: int = 0
    model_calls: int = 0
    largest_batch: int = 0
    model_seconds: float = 0.0
    call_sizes: list[int] = field(default_factory=list)

    def record(self, batch: int, calls: list[int], seconds: float) -> None:
        self.batches += 1
        self.posts += batch
        self.model_calls += len(calls)
        self.largest_batch = max(self.largest_batch, batch)
        self.model_seconds += seconds
        self.call_sizes = (self.call_sizes + calls)[-1000:]


class ScoringRuntime:
    """Holds the model and the thread(s) it runs in, so the faust event loop never waits on it."""

    def __init__(self, scorer: Scorer, max_items: int, max_tokens: int, threads: int = 1) -> None:
        self.scorer = scorer
        self._max_items = max_items
        self._max_tokens = call_token_budget(max_tokens, scorer)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="yuqing-model")
        self.stats = BatchStats()
        # A model's own token estimate when it has one (Transformers); characters otherwise.
        self._estimate_tokens: Callable[[str], int] = (
            scorer.estimate_tokens if isinstance(scorer, EstimatesTokens) else len
        )
        # Models that embed give the sentence embedding from the same forward pass (subject matching).
        self._embedder: Embeds | None = scorer if isinstance(scorer, Embeds) else None
        self._queued = 0
        self._queue_lock = threading.Lock()  # the event loop adds, the model thread takes away
        # A Transformer on the CPU leaves its activations in malloc's arenas; other models barely allocate.
        self._trim_heap = heap_trimmer() if _on_cpu(scorer) else None
        metrics.MODEL_QUEUE_DEPTH.set_function(lambda: self._queued)

    @property
    def queue_depth(self) -> int:
        """Texts handed to the model thread(s) and not yet started: the backlog behind the model."""
        return self._queued

    def _enqueue(self, count: int) -> None:
        with self._queue_lock:
            self._queued += count

    @property
    def companion(self) -> tuple[Scorer, Path] | None:
        """For a stacked model, its TF-IDF half and the folder a text process loads it from; else None."""
        embedder = self._embedder
        if embedder is None or embedder.companion is None or embedder.companion_folder is None:
            return None
        return embedder.companion, embedder.companion_folder

    async def predict(self, texts: Sequence[str], companions: Sequence[Prediction] | None = None) -> list[ScoreResult]:
        """One result per text: a prediction, or the reason the model could not score it. ``companions``:
        a stacked model's TF-IDF predictions of the same texts, when the text stages made them."""
        loop = asyncio.get_running_loop()
        batch = list(texts)
        self._enqueue(len(batch))
        return await loop.run_in_executor(self._executor, self._predict_blocking, batch, companions)

    def _predict_blocking(self, texts: list[str], companions: Sequence[Prediction] | None = None) -> list[ScoreResult]:
        self._enqueue(-len(texts))
        started = time.perf_counter()
        results: list[ScoreResult] = [Unscored("not scored")] * len(texts)
        calls = plan_model_calls(texts, self._max_items, self._max_tokens, self._estimate_tokens)
        for call in calls:
            call_started = time.perf_counter()
            companion = None if companions is None else [companions[i] for i in call]
            for index, result in zip(call, self._predict_call([texts[i] for i in call], companion), strict=True):
                results[index] = result
            metrics.observe_model_call(time.perf_counter() - call_started)
        self.stats.record(len(texts), [len(c) for c in calls], time.perf_counter() - started)
        if self._trim_heap is not None:
            self._trim_heap()
        return results

    def _predict_call(self, texts: list[str], companion: list[Prediction] | None) -> list[ScoreResult]:
        try:
            if self._embedder is None:
                return list(self.scorer.predict(texts))
            predictions, embeddings = self._embedder.predict_with_embeddings(texts, companion)
            return [p._replace(embedding=row) for p, row in zip(predictions, embeddings, strict=True)]
        except Exception:  # one bad text must not sink its neighbours: retry them one by one
            log.exception("model call of %d texts failed; retrying one by one", len(texts))
        singles: list[ScoreResult] = []
        for text in texts:
            try:
                singles.append(self.scorer.predict([text])[0])
            except Exception as exc:
                singles.append(Unscored(f"model failed: {type(exc).__name__}: {exc}"))
        return singles

    async def embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """Sentence embeddings of ``texts`` in the model thread; None for a model without embeddings."""
        if self._embedder is None or not texts:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._embedder.embed, list(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
