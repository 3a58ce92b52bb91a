"""DrainingConsumer hands a fetch's records over in order, with faust's offset bookkeeping."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from pipeline.settings import Settings
from workers.app import Worker
from workers.draining import DrainingConsumer

TOPIC = "posts.raw"


def _consumer(delivered: list[tuple[int, int]], gaps: list[tuple[int, int, int]]) -> Any:
    """A DrainingConsumer with only what ``_hand_over`` reads: no broker, no faust app."""
    consumer: Any = DrainingConsumer.__new__(DrainingConsumer)

    async def callback(message: Any) -> None:
        delivered.append((message.partition, message.offset))

    async def add_gap(tp: TP, start: int, end: int) -> None:
        gaps.append((tp.partition, start, end))

    consumer.__dict__.update(
        _read_offset=defaultdict(lambda: None),
        callback=callback,
        _add_gap=add_gap,
        _commit_every=None,
        _n_acked=0,
    )
    consumer.__dict__["app"] = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    return consumer


def _records(*pairs: tuple[int, int]) -> list[tuple[TP, Any]]:
    return [(TP(TOPIC, p), SimpleNamespace(topic=TOPIC, partition=p, offset=o)) for p, o in pairs]


async def _rest(records: list[tuple[TP, Any]]) -> AsyncIterator[tuple[TP, Any]]:
    for record in records:
        yield record


def test_a_fetch_is_handed_over_in_order_and_read_offsets_follow() -> None:
    delivered: list[tuple[int, int]] = []
    gaps: list[tuple[int, int, int]] = []
    consumer = _consumer(delivered, gaps)
    consumer._read_offset[TP(TOPIC, 1)] = 5  # partition 1 was read up to offset 5
    records = _records((0, 0), (1, 4), (1, 5), (0, 1), (1, 9), (0, 2))
    asyncio.run(consumer._hand_over(records[0], _rest(records[1:])))
    # Offset 4 of partition 1 is behind what was read: dropped, as faust drops it.
    assert delivered == [(0, 0), (1, 5), (0, 1), (1, 9), (0, 2)]
    assert gaps == [(1, 6, 9)]  # offsets 6-8 are missing (a compacted topic): a gap faust may commit past
    assert dict(consumer._read_offset) == {TP(TOPIC, 0): 2, TP(TOPIC, 1): 9}


def test_the_worker_app_creates_a_draining_consumer() -> None:
    worker = Worker(Settings(worker_group="yuqing-unit"))
    assert isinstance(worker.app.consumer, DrainingConsumer)


def test_the_consumers_fetches_wait_on_the_broker_as_long_as_settings_say() -> None:
    """faust fixes 1.5 s; a broker without long polling would hold each fetch that long."""
    worker = Worker(Settings(worker_group="yuqing-unit", fetch_max_wait_s=0.25))
    thread = worker.app.consumer._new_consumer_thread()

    async def created() -> Any:  # aiokafka's consumer wants a running loop; it connects only on start()
        return thread._create_worker_consumer(worker.app.transport)

    consumer = asyncio.run(created())
    assert consumer._fetch_max_wait_ms == 250
