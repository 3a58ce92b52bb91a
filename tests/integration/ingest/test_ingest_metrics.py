"""Ingest's /metrics: records in, stored and refused (by reason category), scraped without a token."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pipeline.ingest.http import make_app
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.integration
GOOD = {"platform": "weibo", "author_id": "u1", "text": "质量很好", "event_time": "2026-11-28T12:00:00Z"}


def scraped(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_ingest_counts_what_it_took_and_refused(settings: Settings) -> None:
    ensure_topics(settings)
    token = "ingest-token-0123456789"
    guarded = settings.model_copy(update={"ingest_tokens": type(settings.ingest_tokens)(token)})
    received = ("yuqing_posts_in_total", (("stage", "ingest"),))
    stored = ("yuqing_posts_out_total", (("stage", "ingest"),))
    malformed = ("yuqing_dlq_records_total", (("reason", "malformed_json"), ("stage", "ingest")))
    with TestClient(make_app(Ingestor(guarded))) as client:
        before = scraped(client)
        body = "\n".join([json.dumps({**GOOD, "id": "m1"}), "{oops", json.dumps({**GOOD, "id": "m2"})])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        assert client.post("/posts", content=body, headers=headers).status_code == 207
        after = scraped(client)
    assert after[received] - before.get(received, 0) == 3
    assert after[stored] - before.get(stored, 0) == 2
    assert after[malformed] - before.get(malformed, 0) == 1
    route = (
        "yuqing_http_requests_total",
        (("app", "ingest"), ("method", "POST"), ("route", "/posts"), ("status", "207")),
    )
    assert after[route] >= 1
