"""The faust application: a score agent and an aggregate agent between three Kafka topics.

posts.raw ─ score agent ─► posts.scored ─ aggregate agent ─► sinks (Redis, ClickHouse)
Both agents take micro-batches without acks and pass them through a chain of stages
(``workers.pipelining``), each stage busy with another batch; a batch's events are acked by the last
stage, in order, so offsets are committed only after the batch's output was delivered (score) or every
sink flushed it (aggregate). Replays are harmless: sinks count post ids once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faust
import numpy as np
from faust.types import EventT

from pipeline.domain.posts import rejected_post_id
from pipeline.domain.subjects.model import SubjectSet
from pipeline.observability import metrics
from pipeline.observability.timing import StageClock
from pipeline.settings import Settings
from pipeline.stores.factory import build_sinks
from pipeline.stores.redis.live import connect
from pipeline.stores.redis.noise import build_noise_filter
from pipeline.stores.redis.subjects import SubjectStore
from pipeline.stores.sink import Sink, SinkError
from schemas.records import Post, Rejection, ScoredPost
from workers.alerting import Alerting
from workers.draining import use_draining_consumer
from workers.handoff import ScoredHandoff
from workers.pipelining import Gathering, Stage, StagePipeline
from workers.preparer import AnalysedBatch, PreparedBatch, Preparer
from workers.probes import clickhouse_reachable, loop_answers, partition_lags, redis_reachable, run_checks
from workers.runtime import ScoringRuntime
from workers.scoring.loading import load_scorer
from workers.scoring.options import RuntimeOptions
from workers.scoring.protocol import ScoreResult, Unscored
from workers.stages import assign_subjects, build_scored, companions_of, decode_scored
from workers.storing import Refusal, Run, store_all

if TYPE_CHECKING:
    from pipeline.api.server import ApiServer

log = logging.getLogger(__name__)
CRASH_EXIT_CODE = 70
LAG_INTERVAL_S = 5.0
LOGGED_IDS = 50  # post ids named in one dead-letter log line
LOGGED_REASONS = 10
# Batches of posts.scored records a worker running both agents holds for its own aggregate agent: those
# between the two agents, with room for the score agent running ahead in a backlog. Past it they are decoded.
HANDOFF_BATCHES = 8
# Batches the aggregate agent holds between taking and acking them: Redis may store up to this many less one
# before ClickHouse has stored the first, and ClickHouse then stores those waiting in one insert.
AGGREGATE_BATCHES_IN_FLIGHT = 8
# A blip is retried almost at once; a long outage is polled without loading the store that is coming back.


def _values(values: Iterable[Any]) -> list[bytes]:
    return [value if isinstance(value, bytes) else str(value).encode() for value in values]


@dataclass(slots=True)
class _StoreBatch:
    """One micro-batch on its way through the aggregate agent's stages: the first sink, then the others."""

    events: list[EventT]
    clock: StageClock
    started: float  # perf_counter when taken
    scored: list[ScoredPost] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


@dataclass(slots=True)
class _ScoreBatch:
    """One micro-batch on its way through the score agent's stages."""

    events: list[EventT]
    clock: StageClock  # its own: the stages of different batches run at the same time
    started: float  # perf_counter when taken
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    analysed: AnalysedBatch | None = None
    prepared: PreparedBatch | None = None
    subjects: SubjectSet = field(default_factory=SubjectSet)
    descriptions: dict[str, np.ndarray] = field(default_factory=dict)
    results: list[ScoreResult] | None = None
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def _deliver(app: faust.App, topic: faust.TopicT, records: list[tuple[str | None, bytes]]) -> None:
    """Send and wait for the broker's acknowledgement of every record.

    Straight to the app's producer rather than through ``topic.send``: faust's per-message futures,
    callbacks and sensors cost more of the worker's GIL than the send itself, and the score agent
    needs none of them (it waits for the acknowledgements and acks its events itself).
    """
    name, producer = topic.get_topic_name(), await app.maybe_start_producer()
    futures = [
        await producer.send(name, key.encode() if key else None, value, None, None, None) for key, value in records
    ]
    await asyncio.gather(*futures)


def _posts_in(batch: _StoreBatch) -> int:
    return len(batch.events)


def _score_failed(exc: BaseException) -> None:
    exit_without_commit(f"score batch failed: {exc!r}")  # unacked: it and the batches behind it are redelivered


def _store_failed(exc: BaseException) -> None:
    exit_without_commit(f"aggregate batch failed: {exc!r}")  # outages are waited out and refusals isolated: a bug


def group_of(settings: Settings) -> str:
    """The worker's faust application id, hence its consumer group. A worker that runs one agent joins
    that agent's own group: faust assigns every topic of a group to every member, so members with
    other agents in one group would be handed partitions they have no agent for."""
    if settings.worker_agents == "all":
        return settings.worker_group
    return f"{settings.worker_group}-{settings.worker_agents}"


def exit_without_commit(reason: str) -> None:
    """Stop at once without acking: the batch is redelivered to whoever takes the partition."""
    log.critical("%s; exiting without committing so the batch is replayed", reason)
    logging.shutdown()
    os._exit(CRASH_EXIT_CODE)


class Worker:
    """One worker process: owns the faust app, its agents, the model runtime and the sinks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scores = settings.worker_agents in ("all", "score")
        self.stores = settings.worker_agents in ("all", "aggregate")
        self.app = faust.App(
            group_of(settings),
            broker=f"kafka://{settings.broker}",
            store="memory://",
            # faust keeps per-app files in a data folder; not in the working directory (a checkout).
            datadir=str(Path(tempfile.gettempdir()) / "yuqing-faust-{conf.name}"),
            web_enabled=False,
            topic_partitions=settings.partitions,
            broker_session_timeout=10.0,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
        )
        use_draining_consumer(self.app, settings.fetch_max_wait_s)
        self.raw = self.app.topic(settings.topic_raw, key_type=bytes, value_type=bytes, value_serializer="raw")
        self.scored = self.app.topic(settings.topic_scored, key_type=bytes, value_type=bytes, value_serializer="raw")
        self.dlq = self.app.topic(settings.topic_dlq, key_type=bytes, value_type=bytes, value_serializer="raw")
        self._runtime: ScoringRuntime | None = None
        self._preparer: Preparer | None = None
        self._sinks: list[Sink] | None = None
        # The first sink (Redis) stores batch n+1 while the others store batch n: a thread each side, and
        # every call on one sink from one thread (chDB's session lives in the thread that opened it).
        self._sink_threads = tuple(ThreadPoolExecutor(1, thread_name_prefix=f"yuqing-sink-{n}") for n in range(2))
        self.flushes = 0
        both = self.scores and self.stores
        self.handoff = ScoredHandoff(HANDOFF_BATCHES * settings.batch_max_items) if both else None
        if self.scores:
            self.app.agent(self.raw, name="score")(self.score_agent)
        if self.stores:
            self.app.agent(self.scored, name="aggregate")(self.aggregate_agent)
        self._loop: asyncio.AbstractEventLoop | None = None  # faust's, once it runs: what /healthz pings
        self.joined = False
        self._lag_labels: set[tuple[str, str]] = set()
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.timer(LAG_INTERVAL_S, name="lag")(self._measure_lag)
        metrics.init_labels()
        self.alerting: Alerting | None = None
        self.api: ApiServer | None = None  # set by workers.process.run_worker(with_api=True)
        if settings.alerts_enabled and self.stores:  # in one group only: one detector in all
            alerts = self.app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes, value_serializer="raw")
            self.alerting = Alerting(settings, alerts)
            # On the leader only: one detector per group, whatever the number of workers.
            self.app.timer(settings.alerts_interval_s, on_leader=True, name="detect")(self.alerting.tick)
        self.app.on_before_shutdown.connect(self._on_shutdown)

    @property
    def runtime(self) -> ScoringRuntime:
        if self._runtime is None:  # loaded lazily: only the process that runs the agent pays for it
            s = self.settings
            scorer = load_scorer(s.model_path, options=RuntimeOptions.from_settings(s))
            self._runtime = ScoringRuntime(scorer, s.batch_max_items, s.batch_max_tokens, s.scorer_threads)
        return self._runtime

    @property
    def preparer(self) -> Preparer:
        if self._preparer is None:
            redis_client = connect(self.settings)
            noise = build_noise_filter(self.settings, redis_client)
            store = SubjectStore(redis_client, self.settings.redis_prefix)
            self._preparer = Preparer(self.settings, store, noise, self.runtime.companion)
            self._preparer.start()
        return self._preparer

    @property
    def sinks(self) -> list[Sink]:
        if self._sinks is None:
            self._sinks = build_sinks(self.settings)
            metrics.init_labels(sink.name for sink in self._sinks)
        return self._sinks

    async def _reject(self, rejections: list[Rejection]) -> None:
        if rejections:
            await _deliver(self.app, self.dlq, [(None, r.model_dump_json().encode()) for r in rejections])
            metrics.count_rejections((r.stage, r.reason) for r in rejections)
            _log_rejections(rejections)

    async def score_agent(self, stream: faust.StreamT[bytes]) -> None:
        s = self.settings
        stages: list[Stage] = [
            self._analyse_stage,
            self._noise_stage,
            self._model_stage,
            functools.partial(self._deliver_stage, stream),
        ]
        pipeline = StagePipeline(stages, s.score_batches_in_flight, _score_failed)
        pipeline.start()
        waiting = time.perf_counter()
        try:  # without acks: each batch's events are acked by its delivery stage, once delivered
            async for events in stream.noack_take(s.batch_max_items, within=s.batch_max_wait_s):
                metrics.observe_batch("score", len(events), time.perf_counter() - waiting)
                await pipeline.put(_ScoreBatch(list(events), StageClock("score"), time.perf_counter()))
                waiting = time.perf_counter()
        finally:
            await pipeline.stop()

    async def _analyse_stage(self, batch: _ScoreBatch) -> _ScoreBatch:
        batch.analysed = await self.preparer.analyse(_values(event.value for event in batch.events), batch.clock)
        if batch.analysed.changed is not None:
            await self.preparer.apply(batch.analysed.changed, self.runtime)
        # Matched against the subjects of the moment it was analysed, whatever changes while it is scored.
        batch.subjects, batch.descriptions = self.preparer.subjects, self.preparer.descriptions
        return batch

    async def _noise_stage(self, batch: _ScoreBatch) -> _ScoreBatch:
        assert batch.analysed is not None
        batch.prepared = await self.preparer.judge(batch.analysed, batch.clock)
        batch.analysed = None
        return batch

    async def _model_stage(self, batch: _ScoreBatch) -> _ScoreBatch:
        assert batch.prepared is not None
        posts = batch.prepared.posts
        texts = [item.model_text for item in posts]
        with batch.clock.timed("model", len(texts)):
            batch.results = await self.runtime.predict(texts, companions_of(posts))
        batch.scored_at = datetime.now(UTC)
        return batch

    async def _deliver_stage(self, stream: faust.StreamT[bytes], batch: _ScoreBatch) -> None:
        assert batch.prepared is not None and batch.results is not None
        clock = batch.clock
        elapsed_ms = (batch.scored_at - batch.taken_at).total_seconds() * 1000
        model = (self.runtime.scorer.model_id, self.runtime.scorer.model_version)
        rejections = list(batch.prepared.rejections)
        out: list[tuple[str | None, bytes]] = []
        handed: list[tuple[bytes, ScoredPost]] = []
        # Summed in locals (three perf_counter reads a post) and handed to the clock once, after the loop.
        matching_s = serialising_s = 0.0
        for item, result in zip(batch.prepared.posts, batch.results, strict=True):
            if isinstance(result, Unscored):
                rejections.append(_rejection(item.post, result.reason))
                continue
            matching = time.perf_counter()
            assigned = assign_subjects(item, batch.subjects, result.embedding, batch.descriptions)
            serialising = time.perf_counter()
            scored = build_scored(item, result, assigned, model, batch.scored_at, elapsed_ms)
            value = scored.model_dump_json().encode()
            out.append((item.post.id, value))
            handed.append((value, scored))
            matching_s += serialising - matching
            serialising_s += time.perf_counter() - serialising
        clock.add("subjects", matching_s, len(out))
        clock.add("serialise", serialising_s, len(out))
        if self.handoff is not None:  # before delivery: the aggregate agent may read them back at once
            self.handoff.keep(handed)
        with clock.timed("deliver", len(out)):
            await _deliver(self.app, self.scored, out)
        metrics.POSTS_OUT.labels(stage="score").inc(len(out))
        await self._reject(rejections)
        for event in batch.events:  # in order: offsets are committed up to the last delivered batch
            await stream.ack(event)
        clock.add("batch", time.perf_counter() - batch.started, len(batch.events))
        clock.publish()

    async def aggregate_agent(self, stream: faust.StreamT[bytes]) -> None:
        s = self.settings
        stages: list[Stage] = [self._first_sink_stage, functools.partial(self._other_sinks_stage, stream)]
        # Redis stores each batch as it comes (the live path); ClickHouse stores the batches Redis has stored
        # meanwhile in one insert, waiting a little for more when they are few (history can lag a second).
        gathering = Gathering(_posts_in, s.history_insert_min_posts, s.history_insert_max_wait_s)
        pipeline = StagePipeline(stages, AGGREGATE_BATCHES_IN_FLIGHT, _store_failed, gathering=gathering)
        pipeline.start()
        waiting = time.perf_counter()
        try:  # without acks: each batch's events are acked once every sink stored it
            async for events in stream.noack_take(s.batch_max_items, within=s.batch_max_wait_s):
                started = time.perf_counter()
                metrics.observe_batch("aggregate", len(events), started - waiting)
                await pipeline.put(_StoreBatch(list(events), StageClock("aggregate"), started))
                waiting = time.perf_counter()
        finally:
            await pipeline.stop()

    async def _first_sink_stage(self, batch: _StoreBatch) -> _StoreBatch:
        with batch.clock.timed("decode", len(batch.events)):
            handed_over = self.handoff.take if self.handoff is not None else None
            batch.scored, batch.rejections = decode_scored(_values(e.value for e in batch.events), handed_over)
        batch.refused = await store_all(self.sinks[:1], batch.scored, self._runner(0), batch.clock)
        return batch

    async def _other_sinks_stage(self, stream: faust.StreamT[bytes], batches: list[_StoreBatch]) -> None:
        """The other sinks store every batch Redis has stored and they have not, at once."""
        remaining = []
        for batch in batches:  # a post one sink refused goes no further
            refused_ids = {post.post.id for post, _ in batch.refused}
            remaining += [post for post in batch.scored if post.post.id not in refused_ids]
        refused = await store_all(self.sinks[1:], remaining, self._runner(1), batches[0].clock)
        refused += [item for batch in batches for item in batch.refused]
        rejections = [item for batch in batches for item in batch.rejections]
        rejections += [_refusal(post, reason) for post, reason in refused]
        metrics.POSTS_OUT.labels(stage="aggregate").inc(sum(len(batch.scored) for batch in batches) - len(refused))
        await self._reject(rejections)
        self.flushes += 1
        if self.settings.test_crash_after_flushes and self.flushes >= self.settings.test_crash_after_flushes:
            exit_without_commit(f"test crash after {self.flushes} flushes")
        for batch in batches:
            for event in batch.events:  # in order: offsets are committed up to the last stored batch
                await stream.ack(event)
            batch.clock.add("batch", time.perf_counter() - batch.started, len(batch.events))
            batch.clock.publish()

    async def _on_assigned(self, *_: Any, **__: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self.joined = True  # also with no partition: more workers than partitions leaves some idle

    async def _measure_lag(self, *_: Any) -> None:
        self._loop = asyncio.get_running_loop()
        consumer = self.app.consumer
        try:  # faust has no public view of the committed offsets it tracks
            lags = partition_lags(consumer, consumer._committed_offset)
        except Exception as exc:  # a consumer still starting or rebalancing: a metric must never stop the worker
            log.debug("consumer lag not measured: %r", exc)
            return
        self._lag_labels = metrics.set_lags(lags, self._lag_labels)

    def liveness(self) -> str:
        return loop_answers(self._loop)

    def readiness(self) -> dict[str, str]:
        """What /readyz reports; runs in the probe thread, so the stores' round trips wait there."""
        checks: dict[str, Callable[[], str]] = {"redis": lambda: redis_reachable(self.settings)}
        if self.stores:  # a worker that only scores never writes history
            checks["clickhouse"] = lambda: clickhouse_reachable(self.settings)
        return {
            "group": "ok" if self.joined else "not joined yet",
            **({"model": "ok" if self._runtime is not None else "not loaded"} if self.scores else {}),
            **run_checks(checks),
        }

    async def _on_shutdown(self, *_: Any, **__: Any) -> None:
        """Stop detection, then close the sinks in their thread: chDB must not be torn down by
        interpreter exit while its session is open (that can crash the process as it exits)."""
        if self.alerting is not None:
            await self.alerting.stop()
        if self.api is not None:  # before the sinks: it reads the same chDB
            await asyncio.to_thread(self.api.stop)
        if self._preparer is not None:
            await asyncio.to_thread(self._preparer.close)
        if self._sinks is not None:
            for n, sink in enumerate(self._sinks):
                await self._runner(n)(sink.close)

    def prepare_sinks(self) -> None:
        """Migrate the stores' schemas before joining the group, each in its sink's thread (chDB's session
        lives there). A store not reachable yet is prepared by its first flush, which retries until it is."""
        for n, sink in enumerate(self.sinks):
            try:
                self._thread_of(n).submit(sink.prepare).result()
            except SinkError as exc:
                log.warning("%s sink not ready at start, its first flush will retry: %s", sink.name, exc)

    def _thread_of(self, sink_index: int) -> ThreadPoolExecutor:
        """The thread of the sink at ``sink_index``: the first sink's own, or the one the others share."""
        return self._sink_threads[min(sink_index, 1)]

    def _runner(self, sink_index: int) -> Run:
        """Runs a blocking call of the sink at ``sink_index`` in that sink's thread."""
        thread = self._thread_of(sink_index)

        async def run(call: Callable[[], None]) -> None:
            await asyncio.get_running_loop().run_in_executor(thread, call)

        return run


def _log_rejections(rejections: list[Rejection]) -> None:
    """One line per batch, not per record: a flood of bad records must not become a flood of logs."""
    ids = [found for r in rejections[:LOGGED_IDS] if (found := rejected_post_id(r)) is not None]
    reasons = sorted({r.reason for r in rejections})
    log.warning(
        "%d records to the dead-letter topic, first: %s",
        len(rejections),
        rejections[0].reason,
        extra={"stage": rejections[0].stage, "post_ids": ids, "reasons": reasons[:LOGGED_REASONS]},
    )


def _rejection(post: Post, reason: str) -> Rejection:
    return Rejection(reason=reason, stage="score", raw=post.model_dump_json(), rejected_at=datetime.now(UTC))


def _refusal(scored: ScoredPost, reason: str) -> Rejection:
    return Rejection(reason=reason, stage="aggregate", raw=scored.model_dump_json(), rejected_at=datetime.now(UTC))
