"""Webhook retries: which answers are retried, how often and how far apart, and what each attempt records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from pipeline.alerting.webhooks import WebhookDispatcher, redact_url, verify_signature
from schemas.records import Alert

URL = "http://receiver.test/hook"
SECRET = b"secret"
Handler = Callable[[httpx.Request], httpx.Response]


def alert() -> Alert:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    return Alert(id="a1", subject="s", kind="negative_surge", state="opened", severity="warning",
                 started_at=at, updated_at=at)  # fmt: skip


def answering(*statuses: int) -> tuple[Handler, list[httpx.Request]]:
    """A receiver that answers with ``statuses`` in turn (the last one repeats), and what it received."""
    received: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(statuses[min(len(received), len(statuses)) - 1])

    return handle, received


async def deliver(handle: Handler, attempts: int = 5) -> tuple[list[tuple[int, str, str]], list[float]]:
    """Deliver one alert; the attempts recorded (number, outcome, detail) and the waits between them."""
    records: list[tuple[int, str, str]] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    def record(alert_id: str, channel: str, attempt: int, outcome: str, detail: str) -> None:
        assert (alert_id, channel) == ("a1", "webhook http://receiver.test/…")  # the path may hold a secret
        records.append((attempt, outcome, detail))

    dispatcher = WebhookDispatcher(SECRET, record, attempts=attempts, first_delay_s=0.5, sleep=sleep,
                                   transport=httpx.MockTransport(handle))  # fmt: skip
    dispatcher.start()
    dispatcher.submit(alert(), URL)
    await dispatcher.drain()
    await dispatcher.stop()
    return records, waits


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_a_2xx_is_delivered_at_once(status: int) -> None:
    records, waits = await deliver(answering(status)[0])
    assert records == [(1, "delivered", f"HTTP {status}")] and waits == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_a_client_error_fails_without_retrying(status: int) -> None:
    records, waits = await deliver(answering(status)[0])
    assert records == [(1, "failed", f"HTTP {status}")] and waits == []


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 507, 599])
async def test_a_retryable_answer_is_retried_with_backoff_until_the_attempts_run_out(status: int) -> None:
    records, waits = await deliver(answering(status)[0], attempts=4)
    assert records == [(1, "retry", f"HTTP {status}"), (2, "retry", f"HTTP {status}"),
                       (3, "retry", f"HTTP {status}"), (4, "failed", f"HTTP {status}")]  # fmt: skip
    assert waits == [0.5, 1.0, 2.0]


async def test_a_network_error_is_retried() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    records, waits = await deliver(refuse, attempts=3)
    assert [(n, outcome) for n, outcome, _ in records] == [(1, "retry"), (2, "retry"), (3, "failed")]
    assert all(detail.startswith("ConnectError: connection refused") for _, _, detail in records)
    assert waits == [0.5, 1.0]


async def test_a_flaky_receiver_gets_one_delivery_id_and_a_valid_signature_on_every_attempt() -> None:
    handle, received = answering(503, 503, 200)
    records, waits = await deliver(handle)
    assert records == [(1, "retry", "HTTP 503"), (2, "retry", "HTTP 503"), (3, "delivered", "HTTP 200")]
    assert waits == [0.5, 1.0]
    assert {r.headers["X-Yuqing-Delivery"] for r in received} == {"a1:opened:2024-05-01T12:00:00+00:00"}
    for request in received:
        assert request.headers["X-Yuqing-Event"] == "alert.opened"
        timestamp, signature = request.headers["X-Yuqing-Timestamp"], request.headers["X-Yuqing-Signature"]
        assert verify_signature(SECRET, timestamp, request.content, signature)


async def test_stopping_the_dispatcher_ends_a_delivery_waiting_to_retry() -> None:
    handle, received = answering(503)
    records: list[int] = []
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()  # a wait that only cancellation ends

    dispatcher = WebhookDispatcher(SECRET, lambda *args: records.append(args[2]), sleep=sleep,
                                   transport=httpx.MockTransport(handle))  # fmt: skip
    settled: list[bool] = []
    dispatcher.start()
    dispatcher.submit(alert(), URL, lambda: settled.append(True))
    await asyncio.wait_for(waiting.wait(), 5)
    await dispatcher.stop()
    assert records == [1] and len(received) == 1
    assert settled == []  # still pending in the outbox: the next leader delivers it


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (404, "failed"), (503, "failed")])
async def test_an_event_is_settled_once_its_outcome_is_final(status: int, outcome: str) -> None:
    async def sleep(seconds: float) -> None:
        pass

    records: list[str] = []
    settled: list[bool] = []
    dispatcher = WebhookDispatcher(SECRET, lambda *args: records.append(args[3]), attempts=2, sleep=sleep,
                                   transport=httpx.MockTransport(answering(status)[0]))  # fmt: skip
    dispatcher.start()
    dispatcher.submit(alert(), URL, lambda: settled.append(True))
    await dispatcher.drain()
    await dispatcher.stop()
    assert records[-1] == outcome and settled == [True]


async def test_a_full_queue_takes_nothing_and_says_so() -> None:
    dispatcher = WebhookDispatcher(SECRET, lambda *args: None, queue_size=1)  # not started: nothing drains it
    assert dispatcher.submit(alert(), URL) is True
    assert dispatcher.submit(alert(), URL) is False


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.test/services/T0/B1/secret-token", "https://hooks.test/…"),
        ("https://user:pass@hooks.test:8443/x?token=abc", "https://hooks.test:8443/…"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ],
)
def test_delivery_records_show_no_path_query_or_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown
