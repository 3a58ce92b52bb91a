"""Storing an aggregate batch: retried while a store is down, stopped by shutdown, bisected around refusals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from tenacity import wait_fixed

from pipeline.observability.timing import StageClock
from pipeline.stores.sink import SinkError, SinkRefused
from schemas.records import ScoredPost
from tests.support.records import scored
from workers.storing import flush_until_stored, store, store_all


class FlakySink:
    """A blocking flush that fails ``failures`` times, then stores."""

    def __init__(self, failures: int | None) -> None:
        self.failures, self.calls = failures, 0

    def flush(self) -> None:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise SinkError(f"store down (call {self.calls})")


async def test_a_failing_flush_is_retried_in_its_thread_with_capped_backoff(caplog: pytest.LogCaptureFixture) -> None:
    sink, waits = FlakySink(failures=10), []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as executor, caplog.at_level(logging.WARNING):
        await flush_until_stored("redis", partial(loop.run_in_executor, executor, sink.flush), sleep=sleep)
    assert sink.calls == 11
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0] == "redis sink unavailable, retrying in 0.2s: store down (call 1)"
    assert len(warnings) == 10


async def test_only_a_sink_error_is_retried() -> None:
    calls = 0

    async def flush() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        await flush_until_stored("redis", flush, wait=wait_fixed(0))
    assert calls == 1


async def test_a_flush_cancelled_while_running_is_not_retried() -> None:
    calls = 0

    async def flush() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await flush_until_stored("redis", flush, wait=wait_fixed(0))
    assert calls == 1


async def test_cancelling_a_flush_waiting_to_retry_stops_the_retries() -> None:
    sink, failed = FlakySink(failures=None), asyncio.Event()

    async def flush() -> None:
        try:
            sink.flush()
        finally:
            failed.set()

    task = asyncio.create_task(flush_until_stored("clickhouse", flush, wait=wait_fixed(0.05)))
    await asyncio.wait_for(failed.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = sink.calls
    await asyncio.sleep(0.2)
    assert sink.calls == calls


class PickySink:
    """Refuses any flush that holds a post whose id starts with "poison"; stores the rest by id."""

    name = "picky"

    def __init__(self, down_for: int = 0) -> None:
        self.buffer: list[ScoredPost] = []
        self.stored: set[str] = set()
        self.flushes = 0
        self.down_for = down_for

    def add(self, posts: Sequence[ScoredPost]) -> None:
        self.buffer += posts

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes <= self.down_for:
            raise SinkError("store down")
        if any(p.post.id.startswith("poison") for p in self.buffer):
            raise SinkRefused("Code: 53. Type mismatch")
        self.stored |= {p.post.id for p in self.buffer}
        self.buffer = []

    def discard(self) -> None:
        self.buffer = []

    def close(self) -> None:
        pass


async def run_here(call: Callable[[], None]) -> None:
    call()


async def no_wait(seconds: float) -> None:
    pass


@pytest.mark.parametrize("poisoned", [(), (0,), (7,), (0, 1), (3, 12, 13, 19), tuple(range(20))])
async def test_a_refused_batch_is_bisected_down_to_its_poison(poisoned: tuple[int, ...]) -> None:
    posts = [scored(f"poison-{i}" if i in poisoned else f"good-{i}") for i in range(20)]
    sink = PickySink(down_for=2)  # an outage first: waited out, never taken for a refusal
    refusals = await store(sink, posts, run_here, sleep=no_wait)
    assert sorted(p.post.id for p, _ in refusals) == sorted(f"poison-{i}" for i in poisoned)
    assert all("picky refused the post: Code: 53" in reason for _, reason in refusals)
    assert sink.stored == {f"good-{i}" for i in range(20) if i not in poisoned}
    assert sink.buffer == []


async def test_a_post_one_sink_refused_is_not_offered_to_the_next() -> None:
    first, second = PickySink(), PickySink()
    refusals = await store_all([first, second], [scored("good-1"), scored("poison-1")], run_here)
    assert [p.post.id for p, _ in refusals] == ["poison-1"]
    assert first.stored == second.stored == {"good-1"} and second.flushes == 1


async def test_a_refused_post_is_logged_with_its_id_as_a_field(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="workers.storing"):
        await store(PickySink(), [scored("good-1"), scored("poison-1")], run_here, sleep=no_wait)
    named = [(r.post_id, r.sink) for r in caplog.records if hasattr(r, "post_id")]
    assert named == [("poison-1", "picky")]
    assert [r.batch_size for r in caplog.records if hasattr(r, "batch_size")] == [2]


async def test_each_sink_time_is_added_to_the_clock_for_the_posts_offered_to_it() -> None:
    clock = StageClock("aggregate")
    await store_all([PickySink()], [scored("good-1"), scored("poison-1")], run_here, clock)
    seconds, records = clock.totals()["picky_flush"]
    assert seconds >= 0 and records == 2
