"""Kafka plumbing shared by ingestion, the demo and the tests: topics and producers."""

from __future__ import annotations

import contextlib

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pipeline.errors import YuqingError
from pipeline.settings import Settings


class BrokerError(YuqingError):
    """The Kafka broker could not be reached or refused an operation."""


def topic_names(settings: Settings) -> list[str]:
    return [settings.topic_raw, settings.topic_scored, settings.topic_dlq, settings.topic_alerts]


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create yuqing's topics if they do not exist yet (safe to call from several processes)."""
    # A broker that was just started (the demo, the tests) refuses connections for a moment.
    retrying = Retrying(
        retry=retry_if_exception_type(KafkaError), stop=stop_after_delay(timeout_s), wait=wait_fixed(0.2), reraise=True
    )
    try:
        admin = retrying(KafkaAdminClient, bootstrap_servers=settings.broker, client_id="yuqing-admin")
    except KafkaError as exc:
        raise BrokerError(f"Kafka broker {settings.broker} unreachable: {exc}") from exc
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.topic_replication_factor,
                # With acks=all a write succeeds only once this many replicas hold it.
                topic_configs={"min.insync.replicas": str(settings.topic_min_insync_replicas)},
            )
            for name in topic_names(settings)
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(wanted)
    finally:
        admin.close()


def make_producer(settings: Settings) -> KafkaProducer:
    """A producer that waits for every in-sync replica: an accepted post is a durable post."""
    try:
        return KafkaProducer(
            bootstrap_servers=settings.broker,
            client_id="yuqing-ingest",
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            retries=10,
            max_in_flight_requests_per_connection=1,  # keeps per-key order across retries
            # Bounded waits: a send blocks on missing metadata, and a record is failed rather than retried,
            # within the ingest timeout, so a caller answers (503) instead of hanging on a broker that is down.
            max_block_ms=int(settings.ingest_timeout_s * 1000),
            bootstrap_timeout_ms=int(settings.ingest_timeout_s * 1000),
            request_timeout_ms=int(settings.ingest_timeout_s * 1000 / 2),
            delivery_timeout_ms=int(settings.ingest_timeout_s * 1000 / 2) + 20 + 1,
        )
    except KafkaError as exc:
        raise BrokerError(f"Kafka broker {settings.broker} unreachable: {exc}") from exc


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) in ``topic`` now, read without joining a consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=settings.broker, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes | None]] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000, max_records=5000).values():
                records.extend((r.key, r.value) for r in batch)
        return records
    finally:
        consumer.close()


def distinct_keys(settings: Settings, topic: str) -> set[bytes]:
    """Every distinct message key in ``topic`` now."""
    return {key for key, _value in read_topic(settings, topic) if key is not None}
