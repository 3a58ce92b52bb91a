"""Webhook delivery of alert events: signed, retried with backoff, recorded, and never in the way.

``submit`` only puts an event for one URL on a bounded queue; background tasks post it, so a slow or
dead receiver costs the pipeline nothing (when the queue is full, ``submit`` says so and the caller
offers the event again later). Each attempt is recorded through ``record``; once an event is
delivered, or its attempts are spent, its ``settled`` callback runs (the outbox confirms it then).

Receivers verify ``X-Yuqing-Signature: sha256=<hex>``, an HMAC-SHA256 with the shared secret over
``"<X-Yuqing-Timestamp>." + body`` (``verify_signature``), so a body cannot be forged or replayed
with another time. ``X-Yuqing-Delivery`` is the same for every attempt of one event: the key a
receiver deduplicates retries by.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential

from pipeline.observability import metrics
from schemas.records import Alert

log = logging.getLogger(__name__)
Recorder = Callable[[str, str, int, str, str], None]  # alert id, channel, attempt, outcome, detail
Settled = Callable[[], None]  # blocking; runs off the event loop
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str, max_age_s: float = 300.0) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(time.time() - float(timestamp)) <= max_age_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookDispatcher:
    """Delivers alerts to webhook URLs from background tasks of the running event loop."""

    def __init__(
        self,
        secret: bytes,
        record: Recorder,
        *,
        attempts: int = 5,
        first_delay_s: float = 0.5,
        timeout_s: float = 5.0,
        queue_size: int = 1_000,
        concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._secret = secret
        self._record = record
        self._attempts = attempts
        self._first_delay = first_delay_s
        self._timeout = timeout_s
        self._sleep = sleep
        self._transport = transport
        self._queue: asyncio.Queue[tuple[Alert, str, Settled]] = asyncio.Queue(queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self._workers:
            return
        self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    def submit(self, alert: Alert, url: str, settled: Settled = lambda: None) -> bool:
        """Queue one delivery; False when the queue is full (nothing was queued)."""
        try:
            self._queue.put_nowait((alert, url, settled))
        except asyncio.QueueFull:
            return False
        return True

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait (bounded) for queued deliveries, e.g. before the worker stops."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("webhook deliveries still queued at shutdown: %d", self._queue.qsize())

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._client is not None:
            await self._client.aclose()

    async def _work(self) -> None:
        while True:
            alert, url, settled = await self._queue.get()
            try:
                await self._deliver(alert, url)
                await asyncio.to_thread(settled)
            except Exception:  # a bug in one delivery must not stop the others
                log.exception("webhook delivery of alert %s to %s failed", alert.id, url)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert, url: str) -> None:
        body = alert.model_dump_json().encode()
        delivery = f"{alert.id}:{alert.state}:{alert.updated_at.isoformat()}"
        numbers = itertools.count(1)

        async def attempt() -> str:
            number = next(numbers)
            outcome, detail = await self._post(url, f"alert.{alert.state}", body, delivery)
            if outcome == "retry" and number == self._attempts:
                outcome = "failed"  # recorded as the final word, not as a retry that never comes
            metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
            # Off the loop: the recorder writes to Redis, which may be the thing that is slow.
            await asyncio.to_thread(self._record_safely, alert, url, number, outcome, detail)
            return outcome

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._first_delay),
            retry=retry_if_result(lambda outcome: outcome == "retry"),
            sleep=self._sleep,
        )
        await retrying(attempt)

    async def _post(self, url: str, event: str, body: bytes, delivery: str) -> tuple[str, str]:
        """One signed POST and its outcome; the signature is fresh, the delivery id the same every time."""
        assert self._client is not None
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Yuqing-Event": event,
            "X-Yuqing-Delivery": delivery,
            "X-Yuqing-Timestamp": timestamp,
            "X-Yuqing-Signature": sign(self._secret, timestamp, body),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return "retry", f"{type(exc).__name__}: {exc}"
        return _judge(response.status_code)

    def _record_safely(self, alert: Alert, url: str, attempt: int, outcome: str, detail: str) -> None:
        shown = redact_url(url)
        try:
            self._record(alert.id, f"webhook {shown}", attempt, outcome, detail.replace(url, shown))
        except Exception as exc:  # recording is best effort: Redis may be the thing that is down
            log.warning("could not record webhook attempt for alert %s: %s", alert.id, exc)


def redact_url(url: str) -> str:
    """The URL as delivery records show it: scheme, host and port. Webhook paths, queries and user info
    often carry the receiver's secret token, and the records are readable through the API."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/…" if parts.path.strip("/") or parts.query or parts.username else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def _judge(status: int) -> tuple[str, str]:
    """Outcome of one HTTP answer: delivered, retry, or failed (a 4xx other than the retryable ones)."""
    if 200 <= status < 300:
        return "delivered", f"HTTP {status}"
    if status in RETRYABLE_STATUS or status >= 500:
        return "retry", f"HTTP {status}"
    return "failed", f"HTTP {status}"
