"""FlushAnnouncements wakes a bench on a flush announcement, and without one after its safety wait."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.devkit.bench.announcements import FlushAnnouncements
from pipeline.settings import Settings
from pipeline.stores.redis.keys import RedisKeys
from pipeline.stores.redis.live import connect

pytestmark = pytest.mark.integration


def test_a_wait_ends_at_the_next_announcement_and_takes_those_queued(redis_url: str, test_id: str) -> None:
    settings = Settings(redis_url=redis_url, redis_prefix=f"yuqing-test-{test_id}")
    channel = RedisKeys(settings.redis_prefix).live_channel
    client = connect(settings)
    with FlushAnnouncements(settings) as flushes:
        flushes.wait(0.2)  # the subscription's own confirmation
        for _ in range(3):  # queued before the wait: one wait takes all three
            client.publish(channel, "flushed")
        time.sleep(0.1)
        flushes.wait(5)
        timer = threading.Timer(0.2, client.publish, (channel, "flushed"))
        started = time.perf_counter()
        timer.start()
        flushes.wait(5)
        woke_after = time.perf_counter() - started
        started = time.perf_counter()
        flushes.wait(0.3)  # nothing queued: only the safety wait ends it
        waited = time.perf_counter() - started
    client.close()
    assert 0.15 < woke_after < 4 and waited >= 0.25
