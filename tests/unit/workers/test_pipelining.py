"""The score agent's stage pipeline: order kept, stages overlapped, batches in flight bounded."""

from __future__ import annotations

import asyncio

import pytest

from workers.pipelining import Gathering, StagePipeline


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.done: list[int] = []

    def stage(self, name: str, delay: float):  # type: ignore[no-untyped-def]
        async def run(batch: int) -> int:
            if name == "first":
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.log.append((f"{name} start", batch))
            await asyncio.sleep(delay)
            self.log.append((f"{name} end", batch))
            if name == "last":
                self.in_flight -= 1
                self.done.append(batch)
            return batch

        return run


async def test_batches_leave_in_order_with_stages_overlapped() -> None:
    recorder = Recorder()
    stages = [recorder.stage("first", 0.01), recorder.stage("model", 0.03), recorder.stage("last", 0.005)]
    pipeline = StagePipeline(stages, max_in_flight=3, on_error=pytest.fail)
    pipeline.start()
    for batch in range(8):
        await pipeline.put(batch)
    while len(recorder.done) < 8:
        await asyncio.sleep(0.01)
    await pipeline.stop()
    assert recorder.done == list(range(8))
    # Batch 1 was prepared while batch 0 was in the model stage.
    log = recorder.log
    assert log.index(("first start", 1)) < log.index(("model end", 0))
    assert recorder.most_in_flight == 3


async def test_one_in_flight_takes_batches_one_by_one() -> None:
    recorder = Recorder()
    stages = [recorder.stage("first", 0.005), recorder.stage("last", 0.005)]
    pipeline = StagePipeline(stages, max_in_flight=1, on_error=pytest.fail)
    pipeline.start()
    for batch in range(4):
        await pipeline.put(batch)
    while len(recorder.done) < 4:
        await asyncio.sleep(0.01)
    await pipeline.stop()
    assert recorder.most_in_flight == 1
    assert recorder.log.index(("first start", 1)) > recorder.log.index(("last end", 0))


async def test_a_failing_stage_reports_and_stops_the_batches_behind_it() -> None:
    errors: list[BaseException] = []
    finished: list[int] = []

    async def fails_on_two(batch: int) -> int:
        if batch == 2:
            raise RuntimeError("bad batch")
        return batch

    async def record(batch: int) -> None:
        finished.append(batch)

    pipeline = StagePipeline([fails_on_two, record], max_in_flight=2, on_error=errors.append)
    pipeline.start()
    for batch in range(4):
        await asyncio.wait_for(pipeline.put(batch), 1)
    await asyncio.sleep(0.05)
    await pipeline.stop()
    assert [repr(e) for e in errors] == [repr(RuntimeError("bad batch"))]
    assert finished == [0, 1]  # nothing after the failed batch is finished (so nothing after it is acked)


async def test_a_last_stage_that_takes_all_gets_every_waiting_batch_at_once_in_order() -> None:
    """Behind, the last stage gets the waiting batches as one list; keeping up, one batch at a time."""
    calls: list[list[int]] = []
    five_ready = asyncio.Event()

    async def first(batch: int) -> int:
        if batch == 5:
            five_ready.set()
        return batch

    async def slow_last(batches: list[int]) -> None:
        calls.append(batches)
        if len(calls) == 1:
            await five_ready.wait()  # behind: batches 1-5 pile up meanwhile
            await asyncio.sleep(0)  # and batch 5 reaches the last stage's inbox

    gathering = Gathering(lambda _: 1)
    pipeline = StagePipeline([first, slow_last], max_in_flight=6, on_error=pytest.fail, gathering=gathering)
    pipeline.start()
    for batch in range(6):
        await asyncio.wait_for(pipeline.put(batch), 1)  # every slot comes back, one per batch
    while sum(map(len, calls)) < 6:
        await asyncio.sleep(0.005)
    await asyncio.wait_for(pipeline.put(6), 1)
    while sum(map(len, calls)) < 7:
        await asyncio.sleep(0.005)
    await pipeline.stop()
    assert calls[0] == [0] and calls[1] == [1, 2, 3, 4, 5] and calls[2] == [6]


async def test_a_gathering_last_stage_lingers_for_enough_items_then_for_its_wait_at_most() -> None:
    """Few items: the last stage waits for more, up to ``min_items``, or ``max_wait_s`` after the first."""
    pipeline, calls = _gathering(Gathering(len, min_items=5, max_wait_s=0.2), max_in_flight=8)
    await pipeline.put("ab")
    await asyncio.sleep(0.05)
    assert calls == []  # 2 items: lingering
    await pipeline.put("cde")
    await asyncio.sleep(0.02)
    assert calls == [["ab", "cde"]]  # 5 items: enough, without waiting out the rest
    started = asyncio.get_running_loop().time()
    await pipeline.put("f")
    while len(calls) < 2:
        await asyncio.sleep(0.005)
    waited = asyncio.get_running_loop().time() - started
    await pipeline.stop()
    assert calls[1] == ["f"] and waited >= 0.2  # alone, once its wait is over


async def test_a_gathering_last_stage_goes_when_every_slot_is_taken() -> None:
    """No more batches can come while the lingering ones hold every slot: it goes at once."""
    pipeline, calls = _gathering(Gathering(len, min_items=100, max_wait_s=60), max_in_flight=2)
    for batch in ("a", "b", "c"):
        await asyncio.wait_for(pipeline.put(batch), 1)  # "c" waits for the slots "a" and "b" free
    while sum(map(len, calls)) < 2:
        await asyncio.sleep(0.005)
    await pipeline.stop()
    assert calls[0] == ["a", "b"]


def _gathering(gathering: Gathering, max_in_flight: int) -> tuple[StagePipeline, list[list[str]]]:
    """A started two-stage pipeline whose gathering last stage records each list of batches it gets."""
    calls: list[list[str]] = []

    async def same(batch: str) -> str:
        return batch

    async def last(batches: list[str]) -> None:
        calls.append(batches)

    pipeline = StagePipeline([same, last], max_in_flight, on_error=pytest.fail, gathering=gathering)
    pipeline.start()
    return pipeline, calls


def test_needs_a_stage_and_a_slot() -> None:
    with pytest.raises(ValueError):
        StagePipeline([], 1, print)
    with pytest.raises(ValueError):
        StagePipeline([asyncio.sleep], 0, print)
