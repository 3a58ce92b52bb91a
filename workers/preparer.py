"""The score agent's text side off the event loop, in two steps that work on consecutive batches at
once: decode, clean, segment and sign (the text thread, or the text processes), then the noise verdicts
(the noise thread, mostly waiting on Redis). Also the worker's current subject set (re-read from the
subject store while the worker runs)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tenacity import Retrying, retry_if_exception, wait_exponential

from pipeline.domain.noise.filter import ObservesNoise
from pipeline.domain.subjects.model import SubjectSet, load_subjects
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from pipeline.settings import Settings
from pipeline.stores.redis.noise import NoiseStoreError
from pipeline.stores.redis.subjects import SubjectStore, SubjectsWatcher
from schemas.records import Post, Rejection
from workers.runtime import ScoringRuntime
from workers.scoring.protocol import Scorer
from workers.stages import PreparedPost, TextAnalysis, decode_posts, prepare_posts
from workers.text_pool import TextPool, analyse_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalysedBatch:
    posts: list[Post]
    analyses: list[TextAnalysis]
    rejections: list[Rejection]
    changed: SubjectSet | None  # the subject set, when it changed before this batch


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    posts: list[PreparedPost]
    rejections: list[Rejection]


class Preparer:
    """One per worker process. ``noise``: where the verdicts come from (state shared in Redis, or this
    process's own); ``companion``: a stacked model's TF-IDF half and its folder (``ScoringRuntime.companion``),
    scored with the text stages, so that on a GPU it runs on the text processes' cores, not in the model's
    thread."""

    def __init__(
        self,
        settings: Settings,
        store: SubjectStore,
        noise: ObservesNoise,
        companion: tuple[Scorer, Path] | None = None,
    ) -> None:
        self._settings = settings
        self._author_key = settings.author_key.get_secret_value().encode()
        self._store = store
        self.noise = noise
        self.segmenter = Segmenter(settings.text_max_chars)
        folder = companion[1] if companion is not None else None
        self.pool = (
            TextPool(settings.text_processes, settings.text_max_chars, settings.terms_per_post, noise.signer, folder)
            if settings.text_processes
            else None
        )
        self._companion = companion[0] if companion is not None else None  # the pool's processes load their own
        self._terms: tuple[str, ...] = ()  # every subject term so far, for the pool's segmenters
        self.watcher = SubjectsWatcher(store, settings.subjects_reload_s)
        self.subjects = SubjectSet()
        self.descriptions: dict[str, np.ndarray] = {}
        # A Redis outage is waited out, as the sinks wait: the batch stays unacked meanwhile, and asking
        # again is safe (verdicts already given are given again).
        self._noise_retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, NoiseStoreError) and exc.transient),
            wait=wait_exponential(multiplier=0.2, max=10.0),
            before_sleep=lambda state: log.warning(
                "noise verdicts waiting for Redis: %s", state.outcome and state.outcome.exception()
            ),
        )
        # One thread each: the segmenter's terms change between batches, and batches must reach the noise
        # filter in stream order; more cores come from the text pool.
        self._text_thread = ThreadPoolExecutor(1, thread_name_prefix="yuqing-text")
        self._noise_thread = ThreadPoolExecutor(1, thread_name_prefix="yuqing-noise")

    def start(self) -> None:
        """Seed an empty subject store from the subjects file, and build jieba before the first post."""
        path = self._settings.subjects_file
        if path is not None and self._store.seed(load_subjects(path)):
            log.info("subject store seeded from %s", path)
        self.segmenter.warm_up()
        if self.pool is not None:
            self.pool.warm_up()

    async def analyse(self, raws: list[bytes], clock: StageClock) -> AnalysedBatch:
        """Decode one batch and analyse its texts. ``clock`` gets the time of each step from the text
        thread: the caller leaves it alone until this returns. Batches come in stream order."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._text_thread, self._analyse_blocking, raws, clock)

    async def judge(self, batch: AnalysedBatch, clock: StageClock) -> PreparedBatch:
        """The noise verdicts of an analysed batch; batches come in stream order, one at a time."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._noise_thread, self._judge_blocking, batch, clock)

    def _analyse_blocking(self, raws: list[bytes], clock: StageClock) -> AnalysedBatch:
        s = self._settings
        with clock.timed("decode", len(raws)):
            posts, rejections = decode_posts(raws, s.text_max_chars, self._author_key)
        changed = self.watcher.poll()
        if changed is not None:  # before this batch is segmented
            self.segmenter.add_terms(changed.all_terms())
            self._terms = tuple(dict.fromkeys([*self._terms, *changed.all_terms()]))
        texts = [post.text for post in posts]
        analyses = analyse_texts(
            texts, self.pool, self._terms, self.segmenter, self.noise.signer, s.terms_per_post, clock, self._companion
        )
        return AnalysedBatch(posts, analyses, rejections, changed)

    def _judge_blocking(self, batch: AnalysedBatch, clock: StageClock) -> PreparedBatch:
        prepared = self._noise_retrying(prepare_posts, batch.posts, batch.analyses, self.noise, clock)
        return PreparedBatch(prepared, batch.rejections)

    async def apply(self, subjects: SubjectSet, runtime: ScoringRuntime) -> None:
        """Use ``subjects`` from now on, with their descriptions embedded by the serving model."""
        described = [s for s in subjects.subjects if s.description]
        vectors = await runtime.embed([s.description or "" for s in described])
        if described and vectors is None:
            log.warning("the model gives no embeddings: subject descriptions will not match semantically")
        self.descriptions = {} if vectors is None else {s.name: v for s, v in zip(described, vectors, strict=True)}
        self.subjects = subjects

    def close(self) -> None:
        self._text_thread.shutdown(wait=True)
        self._noise_thread.shutdown(wait=True)
        if self.pool is not None:
            self.pool.close()
