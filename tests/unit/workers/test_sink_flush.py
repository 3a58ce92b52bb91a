"""The aggregate agent's flush of a batch: retried while a store is down, stopped by shutdown."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from tenacity import wait_fixed

from pipeline.stores.sink import SinkError
from workers.app import flush_until_stored


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
