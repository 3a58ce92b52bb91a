from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipeline.ingest.http import MAX_BODY_BYTES, make_app
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import distinct_keys, ensure_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

GOOD = {"platform": "weibo", "author_id": "u1", "text": "质量很好", "event_time": "2026-11-28T12:00:00Z"}


def _read_dlq(settings: Settings) -> list[dict[str, object]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic_dlq, bootstrap_servers=settings.broker, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def test_file_records_go_to_raw_or_dlq_with_reasons(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ensure_topics(settings)
    lines = [json.dumps({**GOOD, "id": f"p{i}"}, ensure_ascii=False).encode() for i in range(50)]
    lines += [b"{not json", b"\xc3\x28", json.dumps({**GOOD, "id": "p1"}).encode(), b'{"id": "x"}']
    ingestor = Ingestor(settings)
    for line in lines:
        ingestor.submit(line)
    stats = ingestor.flush()
    assert (stats.accepted, stats.rejected) == (50, 4)
    assert distinct_keys(settings, settings.topic_raw) == {f"p{i}".encode() for i in range(50)}
    reasons = sorted(str(r["reason"]).split(":")[0] for r in _read_dlq(settings))
    assert reasons == ["duplicate post id", "invalid UTF-8", "malformed JSON", "text"]


def test_http_push_accepts_json_and_ndjson(settings: Settings) -> None:
    ensure_topics(settings)
    with TestClient(make_app(Ingestor(settings))) as client:
        one = client.post("/posts", json={**GOOD, "id": "h1"})
        assert one.status_code == 200 and one.json()["accepted"] == 1
        body = "\n".join([json.dumps({**GOOD, "id": "h2"}), "oops", json.dumps({**GOOD, "id": "h3"})])
        batch = client.post("/posts", content=body, headers={"Content-Type": "application/x-ndjson"})
        result = batch.json()
        assert batch.status_code == 207
        assert result["accepted"] == 2 and result["rejected"][0]["index"] == 1
        assert client.get("/health").json()["accepted"] == 3
    assert distinct_keys(settings, settings.topic_raw) == {b"h1", b"h2", b"h3"}


def test_http_push_refuses_an_oversized_body_before_reading_it(settings: Settings) -> None:
    ensure_topics(settings)
    ingestor = Ingestor(settings)
    with TestClient(make_app(ingestor)) as client:
        declared = client.post("/posts", content=b"x" * (MAX_BODY_BYTES + 1))
        assert declared.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
            for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
                yield b"y" * (1 << 20)

        streamed = client.post("/posts", content=chunks())
        assert streamed.status_code == 413
    assert ingestor.stats.accepted == ingestor.stats.rejected == 0
