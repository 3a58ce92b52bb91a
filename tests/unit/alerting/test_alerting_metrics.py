"""What alerting exports: webhook attempts by outcome, alert events by state and kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY

from pipeline.alerting.webhooks import WebhookDispatcher
from pipeline.observability import metrics
from schemas.records import Alert


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_webhook_attempt_is_counted_by_outcome() -> None:
    statuses = iter([503, 503, 200])

    async def no_wait(_seconds: float) -> None:
        return None

    transport = httpx.MockTransport(lambda _request: httpx.Response(next(statuses)))
    dispatcher = WebhookDispatcher(b"k", lambda *_: None, sleep=no_wait, transport=transport)
    before = {o: sample("yuqing_webhook_deliveries_total", outcome=o) for o in metrics.WEBHOOK_OUTCOMES}
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    dispatcher.start()
    dispatcher.submit(Alert(id="m1", subject="s", kind="negative_surge", state="opened", severity="warning",
                            started_at=at, updated_at=at), "http://receiver.test/hook")  # fmt: skip
    await dispatcher.drain()
    await dispatcher.stop()
    after = {o: sample("yuqing_webhook_deliveries_total", outcome=o) for o in metrics.WEBHOOK_OUTCOMES}
    assert {o: after[o] - before[o] for o in after} == {"delivered": 1, "retry": 2, "failed": 0}


def test_an_opened_alert_observes_its_delay_and_a_resolved_one_does_not() -> None:
    now = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    delays = sample("yuqing_event_to_alert_seconds_sum", kind="volume_burst")
    metrics.observe_alert("opened", "volume_burst", now - timedelta(seconds=90), now)
    metrics.observe_alert("resolved", "volume_burst", now - timedelta(seconds=900), now)
    assert sample("yuqing_event_to_alert_seconds_sum", kind="volume_burst") == delays + 90
    assert sample("yuqing_alerts_total", state="resolved", kind="volume_burst") >= 1
