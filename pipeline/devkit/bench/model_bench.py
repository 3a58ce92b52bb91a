"""Model throughput: posts/s per batch size, tokenisation included, on realistic posts.

Calls are made as the workers make them (``workers.batching.plan_model_calls``): each micro-batch is
sorted by estimated length and cut into calls of at most the batch size and at most the token budget,
each padded to its own longest post. Reference, measured in the same run on the
same texts: the TF-IDF baseline (``.yuqing/models/baseline``). Each model reports its ratio to it, its
batch-1 figure beside its best, and the useful FLOP/s it achieved (real tokens; padding is waste, reported
apart); on a GPU whose peak is known, the fraction of that peak.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.devkit.progress import progress_bar
from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.errors import YuqingError
from pipeline.settings import BASELINE_MODEL, STUDENT_MODEL, TEACHER_MODEL
from workers.batching import plan_model_calls
from workers.scoring.cards import CARD_FILE, HF_CONFIG_FILE
from workers.scoring.loading import load_scorer
from workers.scoring.options import RuntimeOptions
from workers.scoring.protocol import EstimatesTokens, RunsOnDevice, Scorer

BASE_DIR = Path(".yuqing/models/e5-small-base")
BUCKET_WINDOW = 256  # the workers' default micro-batch (YUQING_BATCH_MAX_ITEMS)
TEXT_SOURCE = "SyntheticFeed('baseline', rate=10, seed=3)"
RANDOM_HEAD = "a randomly initialised 3-class head, for timing only (its labels mean nothing)"
TEACHER_STAND_IN = f"no trained teacher: e5-small-base, the teacher's shape, with {RANDOM_HEAD}"
# Dense peak FLOP/s (no sparsity) by GPU name, most specific name first ("A100" before "A10").
# fp32 is the plain FP32 rate: torch does not use TF32 for matmuls unless asked to.
PEAK_FLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989.4e12, "fp16": 989.4e12, "fp32": 66.9e12}),
    ("H100 PCIe", {"bf16": 756e12, "fp16": 756e12, "fp32": 51.2e12}),
    ("H100", {"bf16": 989.4e12, "fp16": 989.4e12, "fp32": 66.9e12}),
    ("A100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}),
    ("L40S", {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12}),
    ("L4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30.3e12}),
    ("A10", {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}),
    ("T4", {"fp16": 65e12, "fp32": 8.1e12}),
)


class ModelBenchError(YuqingError):
    """Nothing to benchmark."""


@dataclass(frozen=True)
class Plan:
    """Each batch size runs until ``posts`` were scored and ``min_s`` passed, or ``max_s`` passed."""

    batch_sizes: tuple[int, ...]
    posts: int
    min_s: float
    max_s: float


FULL = Plan((1, 8, 32, 128, 512), posts=2048, min_s=2.0, max_s=15.0)
SHORT = Plan((1, 8, 32), posts=192, min_s=0.3, max_s=3.0)


def peak_flops(gpu_name: str, precision: str) -> float | None:
    for key, peaks in PEAK_FLOPS:
        if key.lower() in gpu_name.lower():
            return peaks.get(precision)
    return None


def plan_calls(texts: list[str], batch_size: int, max_tokens: int, estimate: Callable[[str], int]) -> list[list[int]]:
    """Text indices per call, as the workers plan micro-batches of max(batch size, 256) posts.

    The calls are shuffled (seeded) so that a run stopped by its time limit samples short and long posts
    alike, rather than only the shortest calls of the first micro-batch.
    """
    window = max(batch_size, BUCKET_WINDOW)
    calls = []
    for start in range(0, len(texts), window):
        chunk = texts[start : start + window]
        calls += [[start + i for i in call] for call in plan_model_calls(chunk, batch_size, max_tokens, estimate)]
    random.Random(0).shuffle(calls)
    return calls


def _measure(
    predict: Callable[[list[str]], object], texts: list[str], calls: list[list[int]], plan: Plan
) -> tuple[list[list[int]], float]:
    """The calls made and the seconds taken, cycling through ``calls``."""
    made: list[list[int]] = []
    started = time.perf_counter()
    while True:
        call = calls[len(made) % len(calls)]
        predict([texts[i] for i in call])
        made.append(call)
        elapsed = time.perf_counter() - started
        if (sum(map(len, made)) >= plan.posts and elapsed >= plan.min_s) or elapsed >= plan.max_s:
            return made, elapsed


def _shape(scorer: Any) -> dict[str, Any] | None:
    """Parameters and the cost model of a Transformer scorer; None for other kinds (the baseline)."""
    from workers.scoring.transformer import TransformerScorer

    if not isinstance(scorer, TransformerScorer):
        return None
    counts = scorer.parameter_counts
    config: Any = scorer.model.config
    return {
        "parameters": counts["total"],
        "non_embedding_parameters": counts["total"] - counts["embedding"],
        "layers": int(config.num_hidden_layers),
        "hidden": int(config.hidden_size),
        "max_length": scorer.max_length,
        "text_prefix": scorer.spec.text_prefix,
        "precision": scorer.precision,
        "device": str(scorer.device),
    }


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def _token_counts(scorer: Any, texts: list[str]) -> np.ndarray:
    prefixed = [scorer.spec.text_prefix + text.strip() for text in texts]
    ids = scorer.tokenizer(prefixed, truncation=True, max_length=scorer.max_length)["input_ids"]
    return np.array([len(row) for row in ids], dtype=np.float64)


def bench_scorer(
    scorer: Scorer,
    texts: list[str],
    plan: Plan,
    max_tokens: int,
    peak: float | None = None,
    measured: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """posts/s of ``scorer.predict`` (tokenisation included) at each batch size of ``plan``."""
    shape = _shape(scorer)
    result: dict[str, Any] = {"model_id": scorer.model_id, "version": scorer.model_version}
    flops = tokens = None
    if shape is not None:
        tokens = _token_counts(scorer, texts)
        # FLOPs per post: 2 × non-embedding parameters × tokens, plus attention 2 × layers × tokens² × hidden × 2.
        flops = 2 * shape["non_embedding_parameters"] * tokens + 4 * shape["layers"] * tokens**2 * shape["hidden"]
        result |= shape | {"mean_tokens": round(float(tokens.mean()), 1)}
        result["gflops_per_post"] = round(float(flops.mean()) / 1e9, 3)
    for _ in range(3):  # warm-up: lazy initialisation, first-touch of the weights, allocator growth
        scorer.predict(texts[:8])
    rows = []
    estimate = scorer.estimate_tokens if isinstance(scorer, EstimatesTokens) else len
    for batch_size in plan.batch_sizes:
        made, seconds = _measure(scorer.predict, texts, plan_calls(texts, batch_size, max_tokens, estimate), plan)
        posts = sum(map(len, made))
        row: dict[str, Any] = {"batch_size": batch_size, "posts": posts, "seconds": round(seconds, 3)}
        row["mean_call_size"] = round(posts / len(made), 1)
        row["posts_per_s"] = round(posts / seconds, 1)
        if flops is not None and tokens is not None:
            done = float(sum(flops[call].sum() for call in made))  # the very texts this batch size scored
            padded = sum(len(call) * tokens[call].max() for call in made)
            row["padding_fraction"] = round(1 - sum(tokens[call].sum() for call in made) / padded, 4)
            row["achieved_tflops"] = _significant(done / seconds / 1e12)
            row["peak_fraction"] = _significant(done / seconds / peak) if peak else None
        rows.append(row)
        measured()
    return result | {
        "batches": rows,
        "batch1_posts_per_s": next((r["posts_per_s"] for r in rows if r["batch_size"] == 1), None),
        "best": max(rows, key=lambda r: r["posts_per_s"]),
    }


def _is_model(folder: Path) -> bool:
    return (folder / CARD_FILE).is_file() or (folder / HF_CONFIG_FILE).is_file()


def _load_random_head(folder: Path, options: RuntimeOptions, note: str) -> tuple[Path, Scorer, dict[str, Any]]:
    import torch

    from workers.scoring.transformer import load_transformer

    torch.manual_seed(0)  # the same random head every run
    started = time.perf_counter()
    card = {"model_id": f"{folder.name}+random-head", "labels": ["negative", "neutral", "positive"]}
    # e5 models expect their prefix; it also keeps the token counts those of the trained models.
    base = load_transformer(folder, card | {"text_prefix": "query: "}, options, random_head=True)
    info = {"load_seconds": round(time.perf_counter() - started, 2), "random_head": True, "note": note}
    return folder, base, info


def _load(paths: Sequence[Path] | None, options: RuntimeOptions) -> list[tuple[Path, Scorer, dict[str, Any]]]:
    """The scorers to time, with how each was loaded; the random-headed base when nothing trained exists."""
    from workers.scoring.transformer import UntrainedHeadError

    loaded: list[tuple[Path, Scorer, dict[str, Any]]] = []
    if not paths:
        # The teacher, or its untrained shape when it was never trained here (training is a long command).
        if not _is_model(TEACHER_MODEL) and _is_model(BASE_DIR):
            loaded.append(_load_random_head(BASE_DIR, options, TEACHER_STAND_IN))
        paths = [p for p in (TEACHER_MODEL, STUDENT_MODEL) if _is_model(p)]
        if not paths and not loaded:
            raise ModelBenchError(
                f"no model to benchmark: none of {TEACHER_MODEL}, {STUDENT_MODEL} nor {BASE_DIR}; "
                "run `yuqing model build-base` (then `yuqing model train`), or pass --model PATH"
            )
    for path in paths:
        started = time.perf_counter()
        try:
            scorer = load_scorer(path, options=options)
        except UntrainedHeadError:  # a base model given by --model: time it, flagged
            loaded.append(
                _load_random_head(path, options, f"{path} has no trained classifier: timed with {RANDOM_HEAD}")
            )
            continue
        loaded.append((path, scorer, {"load_seconds": round(time.perf_counter() - started, 2), "random_head": False}))
    return loaded


def _runtime(scorers: list[Scorer]) -> dict[str, Any]:
    import torch

    transformer = next((s for s in scorers if isinstance(s, RunsOnDevice)), None)
    device = transformer.device if transformer else torch.device("cpu")
    precision = transformer.precision if transformer else None
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": str(device),
        "gpu": gpu,
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        # CPU figures from a shared machine mean little if other processes held the cores: say so.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "peak_flops": peak_flops(gpu, precision or "") if gpu else None,
    }


def _ratio(ours: float | None, reference: float | None) -> float | None:
    return float(f"{ours / reference:.4g}") if ours and reference else None  # significant digits: ratios can be tiny


def run(
    models: Sequence[Path] | None = None,
    batch_sizes: Sequence[int] | None = None,
    posts: int | None = None,
    short: bool = False,
    options: RuntimeOptions | None = None,
    max_tokens: int = 32_768,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Benchmark ``models`` (default: teacher and student, else the random-headed base) against the baseline.
    ``progress``: a bar on stderr over the (model, batch size) measurements, updated between them."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # load reports and progress bars
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # are not results
    started = time.perf_counter()
    base = SHORT if short else FULL
    plan = Plan(tuple(batch_sizes or base.batch_sizes), posts or base.posts, base.min_s, base.max_s)
    if min(plan.batch_sizes) < 1 or plan.posts < 1:
        raise ModelBenchError("batch sizes and posts must be positive")
    # Whole micro-batches of the largest size, so every call of every size is full.
    window = max(*plan.batch_sizes, BUCKET_WINDOW)
    texts = [post.text for post in SyntheticFeed("baseline", rate=10, seed=3).take(-(-plan.posts // window) * window)]
    loaded = _load(models, options or RuntimeOptions())
    runtime = _runtime([scorer for _, scorer, _ in loaded])
    reference: dict[str, Any] | None = None
    has_reference = (BASELINE_MODEL / CARD_FILE).is_file()
    runs = (len(loaded) + has_reference) * len(plan.batch_sizes)
    results = []
    with progress_bar("measurements", runs, unit="runs", enabled=progress) as report:
        count = iter(range(1, runs + 1))

        def measured() -> None:
            report(next(count))

        if has_reference:
            baseline = load_scorer(BASELINE_MODEL)
            reference = {"path": str(BASELINE_MODEL)} | bench_scorer(baseline, texts, plan, max_tokens, None, measured)
        for path, scorer, info in loaded:
            timed = bench_scorer(scorer, texts, plan, max_tokens, runtime["peak_flops"], measured)
            result = {"path": str(path)} | info | timed
            if reference is not None:
                result["ratio_to_reference"] = _ratio(result["best"]["posts_per_s"], reference["best"]["posts_per_s"])
                result["batch1_ratio_to_reference"] = _ratio(
                    result["batch1_posts_per_s"], reference["batch1_posts_per_s"]
                )
            results.append(result)
    return {
        "bench": "model",
        "short": short,
        "texts": {
            "source": TEXT_SOURCE,
            "distinct": len(texts),
            "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
        },
        "plan": {
            "batch_sizes": list(plan.batch_sizes),
            "max_tokens_per_call": max_tokens,
            "posts": plan.posts,
            "min_s": plan.min_s,
            "max_s": plan.max_s,
        },
        **runtime,
        "reference": reference,
        "reference_note": None if reference else f"no baseline at {BASELINE_MODEL}: run `yuqing model train-baseline`",
        "models": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
