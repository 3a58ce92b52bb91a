"""A surge that goes through the real pipeline raises an alert on every channel: the Redis store and
stream, the Kafka topic ``alerts`` and signed webhooks, with each delivery attempt recorded."""

from __future__ import annotations

import json

import pytest

from pipeline.alerting.webhooks import verify_signature
from pipeline.kafka import read_topic
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import connect
from schemas.records import Alert
from tests.support.surges import SUBJECT, prepare_surge, produce_surge
from tests.support.waiting import WorkerFactory, wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e
SECRET = "test-secret"


def test_a_surge_is_delivered_on_every_channel(e2e_settings: Settings, workers: WorkerFactory) -> None:
    with WebhookReceiver() as steady, WebhookReceiver(statuses=[503, 503, 200]) as flaky:
        settings = e2e_settings.model_copy(
            update={
                "alerts_interval_s": 1.0,
                "alert_webhooks": f"{steady.url},{flaky.url}",
                "alert_webhook_secret": type(e2e_settings.alert_webhook_secret)(SECRET),
            }
        )
        texts = prepare_surge(settings)
        workers(settings)

        produce_surge(settings, texts)
        store = AlertStore(connect(settings), settings.redis_prefix)
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
