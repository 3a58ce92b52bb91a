"""The score agent's text side: clean, segment and the noise verdict in their own thread, and the
worker's current subject set (re-read from the subject store while the worker runs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.domain.noise.filter import NoiseFilter
from pipeline.domain.subjects.model import SubjectSet, load_subjects
from pipeline.domain.text.segment import Segmenter
from pipeline.observability.timing import StageClock
from pipeline.settings import Settings
from pipeline.stores.redis.subjects import SubjectStore, SubjectsWatcher
from schemas.records import Post
from workers.runtime import ScoringRuntime
from workers.stages import PreparedPost, prepare_post

log = logging.getLogger(__name__)


class Preparer:
    """One per worker process: the noise filter's state is this process's share of the stream."""

    def __init__(self, settings: Settings, store: SubjectStore) -> None:
        self._settings = settings
        self._store = store
        self.segmenter = Segmenter(settings.text_max_chars)
        self.noise = NoiseFilter(
            settings.noise_window_s,
            settings.noise_max_entries,
            similarity=settings.noise_similarity,
            flood_min_authors=settings.noise_flood_min_authors,
            burst_max_posts=settings.noise_burst_max_posts,
        )
        self.watcher = SubjectsWatcher(store, settings.subjects_reload_s)
        self.subjects = SubjectSet()
        self.descriptions: dict[str, np.ndarray] = {}
        # One thread: the noise filter must see posts in stream order, and jieba is not faster in two.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="yuqing-text")

    def start(self) -> None:
        """Seed an empty subject store from the subjects file, and build jieba before the first post."""
        path = self._settings.subjects_file
        if path is not None and self._store.seed(load_subjects(path)):
            log.info("subject store seeded from %s", path)
        self.segmenter.warm_up()

    async def prepare(
        self, posts: Sequence[Post], clock: StageClock | None = None
    ) -> tuple[list[PreparedPost], SubjectSet | None]:
        """The prepared posts, and the subject set when it changed (to be applied before matching).
        ``clock`` gets the time of each text step, from the text thread: the caller leaves it alone until
        this returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._prepare_blocking, list(posts), clock)

    def _prepare_blocking(
        self, posts: list[Post], clock: StageClock | None
    ) -> tuple[list[PreparedPost], SubjectSet | None]:
        changed = self.watcher.poll()
        if changed is not None:
            self.segmenter.add_terms(changed.all_terms())  # before this batch is segmented
        max_terms = self._settings.terms_per_post
        return [prepare_post(post, self.segmenter, self.noise, max_terms, clock) for post in posts], changed

    async def apply(self, subjects: SubjectSet, runtime: ScoringRuntime) -> None:
        """Use ``subjects`` from now on, with their descriptions embedded by the serving model."""
        described = [s for s in subjects.subjects if s.description]
        vectors = await runtime.embed([s.description or "" for s in described])
        if described and vectors is None:
            log.warning("the model gives no embeddings: subject descriptions will not match semantically")
        self.descriptions = {} if vectors is None else {s.name: v for s, v in zip(described, vectors, strict=True)}
        self.subjects = subjects

    def close(self) -> None:
        self._executor.shutdown(wait=True)
