"""The score agent's stages without broker or stores: can the text side keep the model fed?

decode → clean → segment → noise → model → subjects → serialise, in micro-batches through the
worker's own stage pipeline (``workers.pipelining``): batch n+1 is decoded and analysed, in the text
processes when there are any, while the model scores batch n and batch n-1 is matched and serialised.
The noise verdicts come from this process's own filter (no Redis). The reference, measured in the same
run on the same texts, is the model alone through the worker's runtime; ``stages_over_model`` is
their ratio, and the stage table says which stage costs what (µs per post, summed over processes).
``cpu_us_per_post_without_model`` is CPU, not wall time: this process's CPU (every thread) and the text
processes' over the run, less this process's CPU over the model alone, per post.

It imports no faust, Kafka or Redis client, so it also runs on a bare GPU machine.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.subjects.model import SubjectSet, load_subjects
from pipeline.domain.text.clean import clean
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from workers.heap import settle_heap
from workers.pipelining import StagePipeline
from workers.runtime import ScoringRuntime
from workers.scoring.loading import load_scorer
from workers.scoring.options import RuntimeOptions
from workers.stages import assign_subjects, build_scored, companions_of, decode_posts, prepare_posts
from workers.text_pool import TextPool, analyse_texts

STAGES = ("decode", "clean", "segment", "signature", "stack", "noise", "model", "subjects", "serialise")
MAX_TERMS = 8
DEMO_SUBJECTS = Path(__file__).resolve().parents[1] / "demo_subjects.yaml"


def stage_records(n: int, seed: int = 11) -> list[bytes]:
    start = datetime.now(UTC) - timedelta(minutes=10)
    feed = SyntheticFeed("bot-flood", rate=n / 540, seed=seed, run_id=uuid.uuid4().hex[:8], start=start)
    return [post.model_dump_json().encode() for post in feed.take(n)]


class _Stages:
    """The three pipeline stages over one shared clock (each stage adds to it from one thread at a time)."""

    def __init__(self, runtime: ScoringRuntime, pool: TextPool | None, subjects: SubjectSet) -> None:
        self.runtime, self.pool, self.subjects = runtime, pool, subjects
        self.segmenter = Segmenter()
        self.segmenter.add_terms(subjects.all_terms())
        self.terms = tuple(subjects.all_terms())
        self.noise = NoiseFilter()
        self.clocks: list[StageClock] = []
        self.delivered = 0

    def _prepare_blocking(self, raws: list[bytes], clock: StageClock) -> list[Any]:
        with clock.timed("decode", len(raws)):
            posts, _ = decode_posts(raws, 5_000)
        texts = [post.text for post in posts]
        companion = self.runtime.companion  # a stacked model's TF-IDF half: the pool's own, or scored here
        analyses = analyse_texts(
            texts, self.pool, self.terms, self.segmenter, self.noise.signer, MAX_TERMS, clock,
            companion[0] if companion is not None else None,
        )  # fmt: skip
        return prepare_posts(posts, analyses, self.noise, clock)

    async def prepare(self, raws: list[bytes]) -> tuple[StageClock, list[Any]]:
        clock = StageClock("stages")
        self.clocks.append(clock)
        return clock, await asyncio.to_thread(self._prepare_blocking, raws, clock)

    async def score(self, batch: tuple[StageClock, list[Any]]) -> tuple[StageClock, list[Any], list[Any]]:
        clock, prepared = batch
        with clock.timed("model", len(prepared)):
            results = await self.runtime.predict([item.model_text for item in prepared], companions_of(prepared))
        return clock, prepared, results

    async def serialise(self, batch: tuple[StageClock, list[Any], list[Any]]) -> None:
        clock, prepared, results = batch
        model, now = (self.runtime.scorer.model_id, self.runtime.scorer.model_version), datetime.now(UTC)
        matching_s = serialising_s = 0.0
        for item, result in zip(prepared, results, strict=True):
            started = time.perf_counter()
            assigned = assign_subjects(item, self.subjects, result.embedding)
            matched = time.perf_counter()
            build_scored(item, result, assigned, model, now, 0.0).model_dump_json()
            matching_s += matched - started
            serialising_s += time.perf_counter() - matched
        clock.add("subjects", matching_s, len(prepared))
        clock.add("serialise", serialising_s, len(prepared))
        self.delivered += len(prepared)


async def _model_alone(runtime: ScoringRuntime, texts: list[str], size: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), size):
        await runtime.predict(texts[i : i + size])
    return time.perf_counter() - started


async def _through_stages(stages: _Stages, records: list[bytes], size: int, in_flight: int) -> float:
    failures: list[BaseException] = []
    pipeline = StagePipeline([stages.prepare, stages.score, stages.serialise], in_flight, failures.append)
    pipeline.start()
    started = time.perf_counter()
    for i in range(0, len(records), size):
        await pipeline.put(records[i : i + size])
    while stages.delivered < len(records) and not failures:
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    await pipeline.stop()
    if failures:
        raise failures[0]
    return seconds


def run(
    model_path: Path,
    posts: int = 4096,
    batch: int = 256,
    processes: int | None = None,
    in_flight: int = 3,
    options: RuntimeOptions | None = None,
) -> dict[str, Any]:
    """``processes``: text processes, default one per core (0: the text thread alone)."""
    processes = (os.cpu_count() or 1) if processes is None else processes
    records = stage_records(posts)
    scorer = load_scorer(model_path, options=options)
    runtime = ScoringRuntime(scorer, batch, 0)
    companion = runtime.companion
    folder = companion[1] if companion is not None else None
    pool = TextPool(processes, 5_000, MAX_TERMS, NoiseFilter().signer, folder) if processes else None
    try:
        if pool is not None:
            pool.warm_up()
        stages = _Stages(runtime, pool, load_subjects(DEMO_SUBJECTS))
        settle_heap()  # as a worker does once loaded
        warm = stage_records(batch, seed=12)  # the first calls pay for allocations and caches
        asyncio.run(_through_stages(stages, warm, batch, in_flight))
        stages.clocks.clear()
        stages.delivered = 0
        cpu_before = _cpu_s(pool)
        through_s = asyncio.run(_through_stages(stages, records, batch, in_flight))
        through_cpu_s = _cpu_s(pool) - cpu_before
        texts = _model_texts(stages, records)
        cpu_before = _cpu_s(pool)
        alone_s = asyncio.run(_model_alone(runtime, texts, batch))
        alone_cpu_s = _cpu_s(pool) - cpu_before
    finally:
        runtime.close()
        if pool is not None:
            pool.close()
    totals: dict[str, list[float]] = {}
    for clock in stages.clocks:
        for stage, (seconds, count) in clock.totals().items():
            total = totals.setdefault(stage, [0.0, 0])
            total[0] += seconds
            total[1] += count
    per_post = {stage: round(totals[stage][0] / totals[stage][1] * 1e6, 1) for stage in STAGES if stage in totals}
    stages_rate, model_rate = posts / through_s, posts / alone_s
    text_stages = [stage for stage in per_post if stage != "model"]
    return {
        "bench": "stages",
        "model_path": str(model_path),
        "device": str(getattr(scorer, "device", "cpu")),
        "posts": posts,
        "batch": batch,
        "text_processes": processes,
        "batches_in_flight": in_flight,
        "cpu_count": os.cpu_count(),
        "us_per_post": per_post,
        "cpu_us_per_post_without_model": round((through_cpu_s - alone_cpu_s) / posts * 1e6, 1),
        "model_alone_cpu_us_per_post": round(alone_cpu_s / posts * 1e6, 1),
        "bottleneck_text_stage": max(text_stages, key=per_post.__getitem__),
        "stages_posts_per_s": round(stages_rate, 1),
        "model_alone_posts_per_s": round(model_rate, 1),
        "stages_over_model": round(stages_rate / model_rate, 3),
    }


def _cpu_s(pool: TextPool | None) -> float:
    """CPU seconds of this process (every thread, the model's included) and of the text processes."""
    return time.process_time() + (pool.cpu_s if pool is not None else 0.0)


def _model_texts(stages: _Stages, records: list[bytes]) -> list[str]:
    posts, _ = decode_posts(records, 5_000)
    return [clean(post.text).content or post.text for post in posts]
