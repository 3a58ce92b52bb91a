from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.devkit.embedded_services import free_port, tansu_broker
from pipeline.ingest.http import MAX_BODY_BYTES, IngestAccessError, make_app, serve
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import distinct_keys, ensure_topics, read_topic
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


def _posts(*ids: str) -> str:
    return "\n".join(json.dumps({**GOOD, "id": post_id}) for post_id in ids)


NDJSON = {"Content-Type": "application/x-ndjson"}


def test_a_broker_outage_gets_503_in_bounded_time_and_the_retry_is_stored(settings: Settings, tmp_path: Path) -> None:
    """The broker goes away and comes back empty (tansu keeps topics in memory), as after a crash."""
    port = free_port()
    bounded = settings.model_copy(update={"broker": f"127.0.0.1:{port}", "ingest_timeout_s": 2.0})
    with tansu_broker(port, tmp_path / "first.log"):
        ensure_topics(bounded)
        ingestor = Ingestor(bounded)
        with TestClient(make_app(ingestor)) as client:
            assert client.post("/posts", content=_posts("o1", "o2"), headers=NDJSON).status_code == 200
    with TestClient(make_app(ingestor)) as client:
        answers: dict[str, Any] = {}
        started = time.monotonic()
        down = threading.Thread(
            target=lambda: answers.update(down=client.post("/posts", content=_posts("o3", "o4"), headers=NDJSON))
        )
        down.start()
        time.sleep(0.3)
        assert client.get("/health").status_code == 200  # the event loop is not waiting on the broker
        down.join(timeout=30)
        refused = answers["down"]
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert time.monotonic() - started < 3 * bounded.ingest_timeout_s + 5  # bounded by the setting, not 60 s
        assert [f["index"] for f in refused.json()["failed"]] == [0, 1]

        with tansu_broker(port, tmp_path / "second.log"):
            ensure_topics(bounded)
            retried = client.post("/posts", content=_posts("o3", "o4"), headers=NDJSON)
            assert retried.status_code == 200, retried.text
            assert retried.json() == {"accepted": 2, "duplicates": [], "rejected": []}
            again = client.post("/posts", content=_posts("o3", "o4"), headers=NDJSON)
            assert again.status_code == 200 and again.json()["duplicates"] == [0, 1]  # stored: not sent twice
            assert distinct_keys(bounded, bounded.topic_raw) == {b"o3", b"o4"}
            assert _read_dlq(bounded) == []  # a retry is no duplicate: nothing went to the dead-letter topic


def test_concurrent_requests_each_learn_their_own_fate(settings: Settings) -> None:
    ensure_topics(settings)
    with TestClient(make_app(Ingestor(settings))) as client:
        answers: dict[int, Any] = {}

        def push(n: int) -> None:
            body = _posts(*(f"c{n}-{i}" for i in range(20))) + ("\nnot json" if n % 2 else "")
            answers[n] = client.post("/posts", content=body, headers=NDJSON)

        threads = [threading.Thread(target=push, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    for n, answer in answers.items():
        assert answer.status_code == (207 if n % 2 else 200), answer.text
        assert answer.json()["accepted"] == 20
        assert [r["index"] for r in answer.json()["rejected"]] == ([20] if n % 2 else [])
    assert len(distinct_keys(settings, settings.topic_raw)) == 120


def test_with_an_author_key_no_real_author_id_reaches_kafka(settings: Settings) -> None:
    keyed = settings.model_copy(update={"author_key": type(settings.author_key)("k" * 32)})
    ensure_topics(keyed)
    with TestClient(make_app(Ingestor(keyed))) as client:
        assert client.post("/posts", json={**GOOD, "id": "a1", "author_id": "real-person-7"}).status_code == 200
    stored = [json.loads(value or b"{}") for _, value in read_topic(keyed, keyed.topic_raw)]
    assert len(stored) == 1 and stored[0]["author_id"].startswith("h1:")
    assert "real-person-7" not in json.dumps(stored)


def test_ingest_beyond_loopback_needs_tokens_and_judges_them_before_the_body(settings: Settings) -> None:
    ensure_topics(settings)
    with pytest.raises(IngestAccessError, match="YUQING_INGEST_TOKENS"):
        serve(Ingestor(settings), "0.0.0.0", 0)
    token = "ingest-token-0123456789"
    guarded = settings.model_copy(update={"ingest_tokens": type(settings.ingest_tokens)(token)})
    with TestClient(make_app(Ingestor(guarded))) as client:
        refused = client.post("/posts", content=b"x" * (MAX_BODY_BYTES + 1))
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        stored = client.post("/posts", json={**GOOD, "id": "t1"}, headers={"Authorization": f"Bearer {token}"})
        assert stored.status_code == 200
    assert distinct_keys(guarded, guarded.topic_raw) == {b"t1"}
