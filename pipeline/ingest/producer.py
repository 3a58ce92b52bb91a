"""The ingestion shell: validate each raw record, send it to ``posts.raw`` or ``posts.dlq``, and learn
its fate from the broker.

A record's fate is known only when the broker acknowledged it (or said no): a post id is remembered as
stored only then, so a client that retries after a broker failure gets its posts stored, and each call
(``ingest``, or ``submit`` … ``flush``) learns about its own records alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline.domain.posts import RecentIds, parse_post, pseudonymise, reject, rejected_post_id
from pipeline.kafka import BrokerError, make_producer
from pipeline.observability import metrics
from pipeline.settings import Settings
from schemas.records import Post, Rejection

log = logging.getLogger(__name__)
RawRecord = bytes | str | dict[str, Any]
# Settled futures are reaped as a long-running feed goes, so its memory stays bounded without flushes.
REAP_EVERY = 1_000


@dataclass
class IngestStats:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    unstored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "reasons": dict(self.reasons),
            "unstored": self.unstored,
        }


@dataclass
class _Sent:
    """One record on its way: what validation said, and the broker's future (None when not sent)."""

    index: int
    result: Post | Rejection
    future: Any = None
    failure: str | None = None
    duplicate: bool = False


@dataclass
class Delivery:
    """What became of one call's records, by index."""

    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # already stored earlier: not sent again
    failed: list[tuple[int, str]] = field(default_factory=list)  # the broker did not take them: retry


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class Ingestor:
    """Validates records and produces them, keyed by post id; rejections go to the DLQ with their reason.

    Thread-safe: concurrent ``ingest`` calls share the producer and the memory of stored ids, nothing else.
    """

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._timeout_s = settings.ingest_timeout_s
        self._author_key = settings.author_key.get_secret_value().encode()
        self._producer = producer or make_producer(settings)
        self._recent = RecentIds()
        self._lock = threading.Lock()  # guards the stats and the stored ids
        self._renewing = threading.Lock()
        self._stale = False  # a send failed: the producer may hold a dead session, renew before the next
        self._pending: deque[_Sent] = deque()  # submit()'s records, settled by flush()
        self._pending_ids: set[str] = set()  # their post ids, so a repeat is caught before the broker answers
        self._reaped = Delivery()  # what reaping settled since the last flush

    def ingest(self, records: Iterable[RawRecord]) -> Delivery:
        """Send ``records`` and wait, at most the ingest timeout, for the broker's answer on each."""
        return self._settle(self._send_all(records, 0, set()), time.monotonic() + self._timeout_s)

    def submit(self, raw: RawRecord) -> Post | Rejection:
        """Validate and send one record; its fate is learnt by ``flush``."""
        sent = self._send_all([raw], len(self._pending), self._pending_ids)[0]
        self._pending.append(sent)
        if len(self._pending) % REAP_EVERY == 0:
            self._reap()
        return sent.result

    def flush(self, timeout_s: float | None = None) -> IngestStats:
        """Wait for every submitted record; raise BrokerError naming the ones the broker did not store."""
        pending, self._pending = list(self._pending), deque()
        # A long file can outlast one ingest timeout in the send queue: wait for the queue first (each record
        # is still bounded by the producer's delivery timeout), then read the answers, all in by then.
        with contextlib.suppress(KafkaError):  # what is still unanswered is reported as failed just below
            self._producer.flush(timeout=timeout_s)
        delivery = self._settle(pending, time.monotonic() + self._timeout_s)
        failed = self._reaped.failed + delivery.failed
        self._pending_ids.clear()
        self._reaped = Delivery()
        if failed:
            raise BrokerError(f"{len(failed)} records were not stored, first: {failed[0][1]}")
        return self.stats

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_s)

    def _send_all(self, records: Iterable[RawRecord], start: int, in_call: set[str]) -> list[_Sent]:
        """Validate and send; ``in_call`` holds the ids sent in this call and not yet settled."""
        self._renew_if_stale()
        batch: list[_Sent] = []
        broker_down: str | None = None
        for index, raw in enumerate(records, start):
            result = parse_post(raw, self.settings.text_max_chars)
            if isinstance(result, Post):
                result = pseudonymise(result, self._author_key)
            sent = _Sent(index, result)
            if isinstance(result, Post):
                with self._lock:
                    stored = self._recent.contains(result.id)
                if stored:
                    sent.duplicate = True
                    batch.append(sent)
                    continue
                if result.id in in_call:
                    sent.result = reject(result.model_dump_json(), f"duplicate post id: {result.id} sent twice")
                in_call.add(result.id)
            if broker_down:  # one send that could not reach the broker bounds the call: no more waits
                sent.failure = broker_down
            else:
                try:
                    sent.future = self._send(sent.result)
                except KafkaError as exc:
                    broker_down = sent.failure = f"{type(exc).__name__}: {exc}"
            batch.append(sent)
        return batch

    def _send(self, result: Post | Rejection) -> Any:
        if isinstance(result, Post):
            key, topic = result.id.encode(), self.settings.topic_raw
        else:
            key, topic = None, self.settings.topic_dlq
        return self._producer.send(topic, key=key, value=result.model_dump_json().encode())

    def _settle(self, batch: list[_Sent], deadline: float) -> Delivery:
        delivery = Delivery()
        for sent in batch:
            if sent.future is not None and sent.failure is None:
                try:
                    sent.future.get(timeout=max(0.0, deadline - time.monotonic()))
                except KafkaError as exc:
                    sent.failure = f"{type(exc).__name__}: {exc}"
            self._record(sent, delivery)
        if delivery.failed:
            self._stale = True
        return delivery

    def _record(self, sent: _Sent, delivery: Delivery) -> None:
        metrics.POSTS_IN.labels(stage="ingest").inc()
        with self._lock:
            if sent.duplicate:
                metrics.INGEST_DUPLICATES.inc()
                self.stats.duplicates += 1
                delivery.duplicates.append(sent.index)
            elif sent.failure is not None:
                metrics.INGEST_UNSTORED.inc()
                self.stats.unstored += 1
                delivery.failed.append((sent.index, sent.failure))
            elif isinstance(sent.result, Post):
                self._recent.remember(sent.result.id)
                metrics.POSTS_OUT.labels(stage="ingest").inc()
                self.stats.accepted += 1
                delivery.accepted.append(sent.index)
            else:
                metrics.count_rejections([("ingest", sent.result.reason)])
                self.stats.rejected += 1
                self.stats.reasons[_reason_kind(sent.result.reason)] += 1
                delivery.rejected.append((sent.index, sent.result.reason))
                # INFO, not WARNING: the sender is told each reason; a bad feed must not flood the log.
                log.info(
                    "record %d to the dead-letter topic: %s",
                    sent.index,
                    sent.result.reason,
                    extra={"post_id": rejected_post_id(sent.result), "reason": _reason_kind(sent.result.reason)},
                )

    def _reap(self) -> None:
        """Settle the records at the head of the queue whose answer is already in."""
        while self._pending and (self._pending[0].future is None or self._pending[0].future.is_done):
            sent = self._pending.popleft()
            if sent.future is not None and sent.future.failed():
                sent.failure = f"{type(sent.future.exception).__name__}: {sent.future.exception}"
            self._record(sent, self._reaped)
            self._stale = self._stale or sent.failure is not None
            if isinstance(sent.result, Post):
                self._pending_ids.discard(sent.result.id)

    def _renew_if_stale(self) -> None:
        """After a failure the producer may hold a dead idempotence session (a restarted broker forgets
        producer ids, and the old producer never recovers): the next call starts a fresh one, so a
        client's retry succeeds once the broker is back. While it is down, the old one stays."""
        if not self._stale:
            return
        with self._renewing:
            if not self._stale:
                return
            try:
                fresh = make_producer(self.settings)
            except BrokerError:
                return
            old, self._producer, self._stale = self._producer, fresh, False
        old.close(timeout=0)
