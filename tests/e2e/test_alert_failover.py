"""The leader dies mid-incident: the alert still reaches its webhook receiver "opened" once and
"resolved" once, with one id, because the next leader resumes the outbox and adopts the open alert.

Worker A leads alone. The receiver answers A's first delivery of "opened" with 503 and A is killed
(SIGKILL) while it waits to retry, so the event is persisted but undelivered. Worker B, started just
before, inherits the leadership once A's session expires, delivers "opened" from the outbox, and
later resolves the alert A opened.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import connect
from schemas.records import Alert
from tests.support.surges import SUBJECT, prepare_surge, produce_surge
from tests.support.waiting import WorkerFactory, wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
# A's attempts are 503, 503, ... and it dies after the first; the fifth request is the first 200.
FIRST_SUCCESS = 5
SECRET = "test-secret"


def test_a_leader_killed_mid_incident_hands_its_alert_over(
    e2e_settings: Settings, workers: WorkerFactory, tmp_path: Path
) -> None:
    thresholds = tmp_path / "alerts.yaml"  # quick to resolve, so the test sees the whole incident
    thresholds.write_text(yaml.safe_dump({"defaults": {"window_minutes": 1, "resolve_after_minutes": 1}}))
    with WebhookReceiver(statuses=[503] * (FIRST_SUCCESS - 1) + [200]) as receiver:
        settings = e2e_settings.model_copy(
            update={
                "alerts_interval_s": 1.0,
                "alerts_config_file": thresholds,
                "alert_webhooks": receiver.url,
                "alert_webhook_secret": type(e2e_settings.alert_webhook_secret)(SECRET),
            }
        )
        texts = prepare_surge(settings)
        leader = workers(settings)

        produce_surge(settings, texts)
        wait_until(lambda: receiver.received != [], 120, "the leader's first delivery attempt")
        workers(settings)  # the successor joins the group
        leader.send_signal(signal.SIGKILL)  # waiting to retry "opened": persisted, not delivered
        leader.wait(10)

        store = AlertStore(connect(settings), settings.redis_prefix)
        wait_until(lambda: any(a.state == "resolved" for a in store.find(SUBJECT)), 300, "the alert resolved")
        wait_until(lambda: len(delivered(receiver)) >= 2, 60, "the resolution delivered")

    (alert,) = store.find(SUBJECT)
    assert delivered(receiver) == [(alert.id, "opened"), (alert.id, "resolved")]
    attempts = [Alert.model_validate_json(r.body) for r in receiver.received]
    assert [(a.id, a.state) for a in attempts[:FIRST_SUCCESS]] == [(alert.id, "opened")] * FIRST_SUCCESS
    deliveries = {(r.headers["X-Yuqing-Event"], r.headers["X-Yuqing-Delivery"]) for r in receiver.received}
    assert sorted(event for event, _ in deliveries) == ["alert.opened", "alert.resolved"]  # one id each
    assert [a.state for a in store.events() if a.id == alert.id] == ["opened", "resolved"]


def delivered(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    """(alert id, state) of the requests the receiver answered with 200, in order."""
    answered = receiver.received[FIRST_SUCCESS - 1 :]
    return [(a.id, a.state) for a in (Alert.model_validate_json(r.body) for r in answered)]
