"""The worker's detection timer: runs ``AlertService`` on the group's leader and delivers what it finds.

Delivery channels: Redis (the alert's state, the alert stream and pub/sub, written by the service
itself in one transaction), then, through the stream as an outbox, the Kafka topic ``alerts`` (keyed
by subject, so one subject's events stay in order) and each webhook URL (queued; never awaited
here). An event is confirmed to the outbox only once its channel settled it, so a leader that dies
or fails to send leaves it pending for the next tick or the next leader. A failing tick (Redis
unreachable) is logged and retried on the next one: detection state lives in memory and survives it.

The timer calls ``tick`` on the leader only, so ticks that stop and start again mean another worker
may have led meanwhile and saved alerts this one's state does not know. Such a worker starts over as
a new leader does: baselines warmed up from Redis, the open alerts adopted from the store.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust

from pipeline.alerting.service import AlertService, load_alerts_config
from pipeline.alerting.webhooks import WebhookDispatcher
from pipeline.observability import metrics
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive, connect
from pipeline.stores.redis.subjects import SubjectStore

log = logging.getLogger(__name__)
KAFKA = "kafka"
LEADERSHIP_GAP_TICKS = 3  # intervals without a tick after which detection starts over


def webhook_channel(url: str) -> str:
    """The outbox channel of one URL, named by a digest: URLs often hold the receiver's secret."""
    return "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:16]


class Alerting:
    """Owns the service, the alerts topic and the webhook dispatcher of one worker process."""

    def __init__(self, settings: Settings, topic: faust.TopicT) -> None:
        self.settings = settings
        self.topic = topic
        self._client = connect(settings)
        self._config = load_alerts_config(settings.alerts_config_file)
        self.store = AlertStore(self._client, settings.redis_prefix)
        self.service = self._new_service()
        self._ticked_at: float | None = None  # monotonic, when the last tick ended
        urls = [url.strip() for url in settings.alert_webhooks.split(",") if url.strip()]
        self._webhooks_by_channel = {webhook_channel(url): url for url in urls}
        secret = settings.alert_webhook_secret.get_secret_value().encode()
        self.webhooks = WebhookDispatcher(secret, self.store.record_delivery)
        self._in_flight: set[tuple[str, str]] = set()  # (channel, stream entry id) queued for a webhook
        self._outbox_open = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="yuqing-detect")

    def _new_service(self) -> AlertService:
        """Detection with no state yet: its first tick takes over as a new leader's does."""
        live, subjects = RedisLive(self.settings, self._client), SubjectStore(self._client, self.settings.redis_prefix)
        return AlertService(live, subjects, self.store, self._config, dashboard_url=self.settings.dashboard_url)

    async def tick(self, *_: Any) -> None:
        """One detection pass and one outbox round (the app's timer calls it on the leader only)."""
        if self._webhooks_by_channel:
            self.webhooks.start()
        gap_s = 0.0 if self._ticked_at is None else time.monotonic() - self._ticked_at
        if gap_s > LEADERSHIP_GAP_TICKS * self.settings.alerts_interval_s:
            log.info("leading again after %.0f s without a tick: detection starts over, as a new leader's", gap_s)
            self.service = self._new_service()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._detect)
            metrics.detector_ticked()
            await self._send_to_kafka()
            for channel in self._webhooks_by_channel:
                await self._queue_webhooks(channel)
        except Exception as exc:  # Redis or the broker down, a bad subject set...: the next tick retries
            metrics.DETECTOR_FAILURES.inc()
            log.warning("alerting tick failed, retrying next tick: %s", exc)
        finally:
            self._ticked_at = time.monotonic()

    def _detect(self) -> None:
        if not self._outbox_open:  # before the first save, so no event is written without its readers
            for channel in (KAFKA, *self._webhooks_by_channel):
                self.store.open_outbox(channel)
            self._outbox_open = True
        self.service.tick(datetime.now(UTC))

    async def _send_to_kafka(self) -> None:
        for entry_id, alert in await asyncio.to_thread(self.store.undelivered, KAFKA):
            sent = await self.topic.send(key=alert.subject.encode(), value=alert.model_dump_json().encode())
            await sent  # the broker's acknowledgement
            await asyncio.to_thread(self.store.record_delivery, alert.id, KAFKA, 1, "delivered", str(self.topic))
            await asyncio.to_thread(self.store.confirm, KAFKA, entry_id)

    async def _queue_webhooks(self, channel: str) -> None:
        url = self._webhooks_by_channel[channel]
        for entry_id, alert in await asyncio.to_thread(self.store.undelivered, channel):
            if (channel, entry_id) in self._in_flight:
                continue
            self._in_flight.add((channel, entry_id))
            if not self.webhooks.submit(alert, url, functools.partial(self._settle, channel, entry_id)):
                self._in_flight.discard((channel, entry_id))  # the queue is full: offered again next tick
                return

    def _settle(self, channel: str, entry_id: str) -> None:
        self.store.confirm(channel, entry_id)
        self._in_flight.discard((channel, entry_id))

    async def stop(self) -> None:
        await self.webhooks.drain()
        await self.webhooks.stop()
        self._executor.shutdown(wait=True)
