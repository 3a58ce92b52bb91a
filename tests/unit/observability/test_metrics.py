"""The metrics module: bounded labels, the names the rules reference, and the HTTP instrumentation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from pipeline.observability import metrics
from pipeline.observability.http import instrument, route_label


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("malformed JSON: Expecting value at line 1 column 1", "malformed_json"),
        ("invalid post: event_time: Input should be a valid datetime", "invalid_post"),
        ("clickhouse refused the post: Code: 53", "clickhouse_refused_the_post"),
        ("record too large: 2000000 bytes, the limit is 1048576", "record_too_large"),
        (":::", "other"),
    ],
)
def test_a_reason_becomes_its_category(reason: str, category: str) -> None:
    assert metrics.reason_category(reason) == category


def test_reason_categories_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_reasons", {f"r{i}" for i in range(metrics.MAX_REASONS)})
    assert metrics.reason_category("r3: known") == "r3"
    assert metrics.reason_category("something new: x") == "other"


def test_every_alerted_metric_is_declared() -> None:
    metrics.init_labels(["redis", "clickhouse"])
    text = metrics.exposition()[0].decode()
    assert set(metrics.ALERTED_METRICS) - metrics.exposed_names(text) == set()


def test_exposed_names_include_what_a_family_will_have() -> None:
    text = (
        '# TYPE a_total counter\n# TYPE h_seconds histogram\nh_seconds_bucket{le="1"} 0\n# TYPE g gauge\ng{x="1"} 2\n'
    )
    assert metrics.exposed_names(text) >= {"a_total", "h_seconds_bucket", "h_seconds_count", "h_seconds_sum", "g"}
    assert "g_total" not in metrics.exposed_names(text)


def test_lags_of_partitions_no_longer_held_are_dropped() -> None:
    held = metrics.set_lags({("t-lag", 0): 5, ("t-lag", 1): 0}, set())
    assert sample("yuqing_consumer_lag", {"topic": "t-lag", "partition": "0"}) == 5
    metrics.set_lags({("t-lag", 1): 2}, held)
    assert REGISTRY.get_sample_value("yuqing_consumer_lag", {"topic": "t-lag", "partition": "0"}) is None
    assert sample("yuqing_consumer_lag", {"topic": "t-lag", "partition": "1"}) == 2
    assert sample("yuqing_partitions_assigned") == 1


def test_rejections_are_counted_by_stage_and_category() -> None:
    labels = {"stage": "score", "reason": "model_failed"}
    before = sample("yuqing_dlq_records_total", labels)
    metrics.count_rejections([("score", "model failed: RuntimeError: boom"), ("score", "model failed: x")])
    assert sample("yuqing_dlq_records_total", labels) == before + 2


def test_latencies_are_never_negative() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert metrics.seconds_since(now + timedelta(seconds=3), now) == 0.0
    assert metrics.seconds_since(now - timedelta(seconds=3), now) == 3.0


def test_a_stored_batch_observes_flush_time_and_event_latency() -> None:
    count = sample("yuqing_sink_flush_seconds_count", {"sink": "unit"})
    events = sample("yuqing_event_to_sink_seconds_count", {"sink": "unit"})
    now = datetime.now(UTC)
    metrics.observe_stored("unit", [now - timedelta(seconds=2), now], 0.01)
    assert sample("yuqing_sink_flush_seconds_count", {"sink": "unit"}) == count + 1
    assert sample("yuqing_event_to_sink_seconds_count", {"sink": "unit"}) == events + 2


def test_requests_are_counted_by_route_template() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    instrument(app, "unit")
    client = TestClient(app)
    labels = {"app": "unit", "route": "/items/{item_id}", "method": "GET", "status": "200"}
    before = sample("yuqing_http_requests_total", labels)
    assert client.get("/items/7").status_code == 200
    assert client.get("/items/8").status_code == 200
    assert client.get("/nowhere").status_code == 404
    assert sample("yuqing_http_requests_total", labels) == before + 2
    assert sample("yuqing_http_requests_total", {**labels, "route": "unmatched", "status": "404"}) >= 1
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert 'yuqing_http_requests_total{app="unit",method="GET",route="/items/{item_id}",status="200"}' in scraped.text


def test_route_label_of_nothing_is_bounded() -> None:
    assert route_label(None) == "unmatched"


def test_a_route_under_a_router_prefix_keeps_the_prefix() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/alerts/{alert_id}")
    def alert(alert_id: str) -> dict[str, str]:
        return {"id": alert_id}

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    instrument(app, "prefixed")
    assert TestClient(app).get("/api/v1/alerts/a-1").status_code == 200
    labels = {"app": "prefixed", "route": "/api/v1/alerts/{alert_id}", "method": "GET", "status": "200"}
    assert sample("yuqing_http_requests_total", labels) == 1
