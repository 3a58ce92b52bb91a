"""The worker's detection timer: runs ``AlertService`` on the group's leader and delivers what it finds.

Delivery channels, in order: Redis (the alert's state, the alert stream and pub/sub, written by the
service itself), the Kafka topic ``alerts`` (keyed by subject, so one subject's events stay in
order), and webhooks (queued; never awaited here). A failing tick (Redis unreachable) is logged and
retried on the next one: detection state lives in memory and survives it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust

from pipeline.alerting.service import AlertService, load_alerts_config
from pipeline.alerting.webhooks import WebhookDispatcher
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisLive, connect
from pipeline.stores.redis.subjects import SubjectStore

log = logging.getLogger(__name__)


class Alerting:
    """Owns the service, the alerts topic and the webhook dispatcher of one worker process."""

    def __init__(self, settings: Settings, topic: faust.TopicT) -> None:
        self.settings = settings
        self.topic = topic
        client = connect(settings)
        self.store = AlertStore(client, settings.redis_prefix)
        self.service = AlertService(
            RedisLive(settings, client),
            SubjectStore(client, settings.redis_prefix),
            self.store,
            load_alerts_config(settings.alerts_config_file),
            dashboard_url=settings.dashboard_url,
        )
        urls = [url.strip() for url in settings.alert_webhooks.split(",") if url.strip()]
        secret = settings.alert_webhook_secret.get_secret_value().encode()
        self.webhooks = WebhookDispatcher(urls, secret, self.store.record_delivery)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="yuqing-detect")

    async def tick(self, *_: Any) -> None:
        """One detection pass (the app's timer calls it on the leader only)."""
        self.webhooks.start()
        loop = asyncio.get_running_loop()
        try:
            alerts = await loop.run_in_executor(self._executor, self.service.tick, datetime.now(UTC))
        except Exception as exc:  # Redis down, a bad subject set...: detection waits for the next tick
            log.warning("detection tick failed, retrying next tick: %s", exc)
            return
        for alert in alerts:
            self.webhooks.submit(alert)
            sent = await self.topic.send(key=alert.subject.encode(), value=alert.model_dump_json().encode())
            await sent  # the broker's acknowledgement
            await asyncio.to_thread(self.store.record_delivery, alert.id, "kafka", 1, "delivered", str(self.topic))

    async def stop(self) -> None:
        await self.webhooks.drain()
        await self.webhooks.stop()
        self._executor.shutdown(wait=True)
