"""Every Prometheus metric yuqing exports, declared once, on prometheus-client's default registry.

Worker, ingest and API import what they record from here, so a name is spelt in one place, and
``ALERTED_METRICS`` lists what the Prometheus rules and dashboards reference (a test checks each one
appears on a running worker's ``/metrics``). The default registry also carries the process collector
(``process_resident_memory_bytes`` on Linux).

Labels stay bounded: stages, sinks, outcomes and alert kinds are fixed sets; a dead-letter reason is
reduced to its category (``reason_category``), never its text, which holds values from the record.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

STAGES = ("ingest", "score", "aggregate")
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
ALERT_STATES = ("opened", "updated", "resolved")
ALERT_KINDS = ("negative_surge", "volume_burst", "sentiment_flip")
# Seconds: from a blink (a quiet pipeline) to an hour (a backlog or a replay of history).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

POSTS_IN = Counter("yuqing_posts_in", "Records a stage received.", ["stage"])
POSTS_OUT = Counter("yuqing_posts_out", "Records a stage passed on (ingest: stored in posts.raw).", ["stage"])
DLQ_RECORDS = Counter(
    "yuqing_dlq_records", "Records sent to the dead-letter topic, by stage and reason category.", ["stage", "reason"]
)
INGEST_DUPLICATES = Counter("yuqing_ingest_duplicates", "Records ingest skipped: their post id was stored before.")
INGEST_UNSTORED = Counter("yuqing_ingest_unstored", "Records the broker did not store (the client is told to retry).")

CONSUMER_LAG = Gauge(
    "yuqing_consumer_lag", "Messages behind the partition's end, from the committed offset.", ["topic", "partition"]
)
PARTITIONS_ASSIGNED = Gauge("yuqing_partitions_assigned", "Partitions this worker holds.")
BATCH_SIZE = Histogram("yuqing_batch_size", "Records in one micro-batch.", ["agent"], buckets=SIZE_BUCKETS)
BATCH_FILL_WAIT = Histogram(
    "yuqing_batch_fill_wait_seconds", "Time an agent waited for its micro-batch to fill.", ["agent"],
    buckets=FAST_BUCKETS,
)  # fmt: skip
MODEL_CALLS = Counter("yuqing_model_calls", "Calls of the model (a micro-batch makes one or more).")
MODEL_CALL_SECONDS = Histogram("yuqing_model_call_seconds", "Duration of one model call.", buckets=FAST_BUCKETS)
MODEL_QUEUE_DEPTH = Gauge("yuqing_model_queue_depth", "Texts handed to the model thread and not yet started.")

SINK_FLUSH_SECONDS = Histogram(
    "yuqing_sink_flush_seconds", "Time to store one batch in a sink, retries included.", ["sink"],
    buckets=FAST_BUCKETS,
)  # fmt: skip
# Where a worker's time goes, summed per stage: divided by the records, the cost of a stage per post
# (``yuqing bench pipeline`` reads it from /metrics). Stages are a fixed set per agent: ``AGENT_STAGES``,
# and ``<sink>_flush`` for each sink of the aggregate agent; ``batch`` is the whole batch, stages and gaps.
AGENT_STAGES: dict[str, tuple[str, ...]] = {
    "score": ("decode", "clean", "segment", "noise", "model", "subjects", "serialise", "deliver", "batch"),
    "aggregate": ("decode", "batch"),
}
STAGE_SECONDS = Counter("yuqing_stage_seconds", "Time spent in a stage of an agent.", ["agent", "stage"])
STAGE_RECORDS = Counter("yuqing_stage_records", "Records that went through a stage of an agent.", ["agent", "stage"])
GC_SECONDS = Counter(
    "yuqing_gc_seconds", "Time the cyclic garbage collector ran, holding the GIL, by generation.", ["generation"]
)
SINK_RETRIES = Counter("yuqing_sink_retries", "Flushes retried because the store was unavailable.", ["sink"])
SINK_REFUSALS = Counter("yuqing_sink_refusals", "Posts a store refused (sent to the dead-letter topic).", ["sink"])
EVENT_TO_SINK = Histogram(
    "yuqing_event_to_sink_seconds", "From a post's event time to its being stored in a sink (sink=redis: live).",
    ["sink"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
EVENT_TO_ALERT = Histogram(
    "yuqing_event_to_alert_seconds", "From the start of an incident (event time) to its alert being opened.",
    ["kind"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
ALERTS = Counter("yuqing_alerts", "Alert events announced, by state and kind.", ["state", "kind"])
DETECTOR_TICKS = Counter("yuqing_detector_ticks", "Detection passes completed (on the group's leader).")
DETECTOR_FAILURES = Counter("yuqing_detector_failures", "Detection passes that failed (retried on the next).")
DETECTOR_LAST_TICK = Gauge(
    "yuqing_detector_last_tick_timestamp_seconds", "Unix time of the last completed detection pass (0: none here)."
)
WEBHOOK_DELIVERIES = Counter("yuqing_webhook_deliveries", "Webhook delivery attempts, by outcome.", ["outcome"])

HTTP_REQUESTS = Counter(
    "yuqing_http_requests", "HTTP requests served, by route template.", ["app", "route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "yuqing_http_request_seconds", "Time to the response's start, by route template.", ["app", "route", "method"],
    buckets=FAST_BUCKETS,
)  # fmt: skip

# What the alerting rules and the dashboard reference, as written in PromQL.
ALERTED_METRICS: tuple[str, ...] = (
    "yuqing_posts_in_total",
    "yuqing_posts_out_total",
    "yuqing_dlq_records_total",
    "yuqing_consumer_lag",
    "yuqing_partitions_assigned",
    "yuqing_batch_size_bucket",
    "yuqing_batch_fill_wait_seconds_bucket",
    "yuqing_model_calls_total",
    "yuqing_model_call_seconds_bucket",
    "yuqing_model_queue_depth",
    "yuqing_sink_flush_seconds_bucket",
    "yuqing_sink_flush_seconds_count",
    "yuqing_gc_seconds_total",
    "yuqing_sink_retries_total",
    "yuqing_sink_refusals_total",
    "yuqing_event_to_sink_seconds_bucket",
    "yuqing_event_to_alert_seconds_bucket",
    "yuqing_alerts_total",
    "yuqing_detector_ticks_total",
    "yuqing_detector_failures_total",
    "yuqing_detector_last_tick_timestamp_seconds",
    "yuqing_webhook_deliveries_total",
    "process_resident_memory_bytes",
)


def init_labels(sinks: Iterable[str] = ()) -> None:
    """Create the known label sets at zero, so a rate is 0 rather than absent before the first event."""
    for stage in STAGES:
        POSTS_IN.labels(stage=stage)
        POSTS_OUT.labels(stage=stage)
    for agent, stages in AGENT_STAGES.items():
        for stage in stages:
            observe_stage(agent, stage, 0.0, 0)
    for sink in sinks:
        observe_stage("aggregate", f"{sink}_flush", 0.0, 0)
        SINK_RETRIES.labels(sink=sink)
        SINK_REFUSALS.labels(sink=sink)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome=outcome)
    for state in ALERT_STATES:
        for kind in ALERT_KINDS:
            ALERTS.labels(state=state, kind=kind)


_WORD = re.compile(r"[^a-z0-9]+")
MAX_REASONS = 64
_reasons: set[str] = set()
_reasons_lock = threading.Lock()


def reason_category(reason: str) -> str:
    """The bounded label of a dead-letter reason: the words before its first colon ("malformed JSON: …"
    → ``malformed_json``), at most ``MAX_REASONS`` distinct ones per process, then ``other``."""
    head = reason.split(":", 1)[0]
    category = _WORD.sub("_", head.lower()).strip("_")[:40].strip("_") or "other"
    if category in _reasons:
        return category
    with _reasons_lock:
        if len(_reasons) >= MAX_REASONS:
            return "other"
        _reasons.add(category)
    return category


def seconds_since(moment: datetime, now: datetime | None = None) -> float:
    """Seconds from ``moment`` to ``now`` (the clock by default), never negative: an event stamped a
    little ahead of this clock counts as no delay."""
    return max(((now or datetime.now(UTC)) - moment).total_seconds(), 0.0)


def exposition() -> tuple[bytes, str]:
    """The default registry in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def exposed_names(text: str) -> set[str]:
    """The names a PromQL expression can select from a scrape: every sample's, and those a declared
    family gets once it has samples (``_total``, ``_bucket``, ``_count``, ``_sum``)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.add(name)
            names.update(base + suffix for suffix in suffixes.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def observe_stored(sink: str, event_times: Iterable[datetime], flush_s: float) -> None:
    """One batch stored in ``sink``: its flush time, and each post's delay from its event time."""
    SINK_FLUSH_SECONDS.labels(sink=sink).observe(flush_s)
    latency = EVENT_TO_SINK.labels(sink=sink)
    now = datetime.now(UTC)
    for moment in event_times:
        latency.observe(seconds_since(moment, now))


def observe_batch(agent: str, size: int, waited_s: float) -> None:
    BATCH_SIZE.labels(agent=agent).observe(size)
    BATCH_FILL_WAIT.labels(agent=agent).observe(waited_s)
    POSTS_IN.labels(stage=agent).inc(size)


def observe_stage(agent: str, stage: str, seconds: float, records: int) -> None:
    STAGE_SECONDS.labels(agent=agent, stage=stage).inc(seconds)
    STAGE_RECORDS.labels(agent=agent, stage=stage).inc(records)


def observe_model_call(seconds: float) -> None:
    MODEL_CALLS.inc()
    MODEL_CALL_SECONDS.observe(seconds)


def count_rejections(rejections: Iterable[tuple[str, str]]) -> None:
    """Count dead-lettered records given as (stage, reason) pairs."""
    for stage, reason in rejections:
        DLQ_RECORDS.labels(stage=stage, reason=reason_category(reason)).inc()


def set_lags(lags: dict[tuple[str, int], int], previous: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Publish each held partition's lag and drop the partitions no longer held; returns the label sets
    now published, to pass as ``previous`` next time."""
    current = {(topic, str(partition)) for topic, partition in lags}
    for labels in previous - current:
        CONSUMER_LAG.remove(*labels)
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
    PARTITIONS_ASSIGNED.set(len(lags))
    return current


def observe_alert(state: str, kind: str, started_at: datetime, now: datetime) -> None:
    ALERTS.labels(state=state, kind=kind).inc()
    if state == "opened":
        EVENT_TO_ALERT.labels(kind=kind).observe(seconds_since(started_at, now))


def detector_ticked() -> None:
    DETECTOR_TICKS.inc()
    DETECTOR_LAST_TICK.set_to_current_time()
