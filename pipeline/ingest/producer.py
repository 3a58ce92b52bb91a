"""The ingestion shell: validate each raw record, send it to ``posts.raw`` or ``posts.dlq``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from pipeline.domain.posts import RecentIds, parse_post, reject
from pipeline.kafka import BrokerError, make_producer
from pipeline.settings import Settings
from schemas.records import Post, Rejection


@dataclass
class IngestStats:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    unstored: int = 0
    send_failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reasons": dict(self.reasons),
            "unstored": self.unstored,
        }


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class Ingestor:
    """Validates records and produces them, keyed by post id; rejections go to the DLQ with their reason."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._producer = producer or make_producer(settings)
        self._recent = RecentIds()

    def submit(self, raw: bytes | str | dict[str, Any]) -> Post | Rejection:
        result = parse_post(raw, self.settings.text_max_chars)
        if isinstance(result, Post) and self._recent.seen_before(result.id):
            result = reject(result.model_dump_json(), f"duplicate post id: {result.id} was already ingested")
        if isinstance(result, Post):
            self.stats.accepted += 1
            self._send(self.settings.topic_raw, result.id, result.model_dump_json())
        else:
            self.stats.rejected += 1
            self.stats.reasons[_reason_kind(result.reason)] += 1
            self._send(self.settings.topic_dlq, None, result.model_dump_json())
        return result

    def _send(self, topic: str, key: str | None, value: str) -> None:
        future = self._producer.send(topic, key=key.encode() if key else None, value=value.encode())
        future.add_errback(lambda exc: self.stats.send_failures.append(f"{topic}: {exc}"))

    def flush(self, timeout_s: float = 60.0) -> IngestStats:
        """Wait until the broker has acknowledged everything; raise if any record was not stored."""
        self._producer.flush(timeout=timeout_s)
        failures, self.stats.send_failures = self.stats.send_failures, []
        if failures:
            self.stats.unstored += len(failures)
            raise BrokerError(f"{len(failures)} records were not stored, first: {failures[0]}")
        return self.stats

    def close(self) -> None:
        self._producer.close()
