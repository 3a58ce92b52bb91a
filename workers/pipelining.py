"""Micro-batches through a chain of async stages, each stage busy with a different batch.

While the model scores batch n, batch n+1 is prepared and batch n-1 delivered. Each stage takes one
batch at a time, in arrival order, so batches leave in the order they came; ``put`` waits while
``max_in_flight`` batches are between it and the end of the last stage, which bounds memory and the
work a crash leaves to be replayed. A stage that raises stops the chain: ``on_error`` decides what
then happens to the process (the worker exits without committing).

With a ``Gathering``, the last stage takes every batch waiting for it at once, as a list in arrival
order, and may linger for more: until they hold ``min_items``, ``max_wait_s`` after the first came,
or every slot is taken. One ClickHouse insert then stores several batches: ClickHouse pays per insert
(a part, then merges) far more than per row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

Stage = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Gathering:
    """How the last stage gathers batches: ``size`` counts a batch's items; without ``min_items`` or
    ``max_wait_s`` it takes what is waiting and goes."""

    size: Callable[[Any], int]
    min_items: int = 0
    max_wait_s: float = 0.0


class StagePipeline:
    def __init__(
        self,
        stages: Sequence[Stage],
        max_in_flight: int,
        on_error: Callable[[BaseException], None],
        *,
        gathering: Gathering | None = None,
    ) -> None:
        if not stages or max_in_flight < 1:
            raise ValueError("a pipeline needs at least one stage and max_in_flight >= 1")
        self._stages = list(stages)
        self._max_in_flight = max_in_flight
        self._on_error = on_error
        self._gathering = gathering
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in self._stages]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i), name=f"stage-{i}") for i in range(len(self._stages))]

    async def put(self, batch: Any) -> None:
        """Hand a batch to the first stage once fewer than ``max_in_flight`` are in the chain."""
        await self._slots.acquire()
        self._queues[0].put_nowait(batch)

    async def _run(self, index: int) -> None:
        stage, inbox = self._stages[index], self._queues[index]
        last = index == len(self._stages) - 1
        gathers = last and self._gathering is not None
        while True:
            batch = await inbox.get()
            taken = 1
            if gathers:
                batch = await self._gather(batch, inbox)
                taken = len(batch)
            try:
                result = await stage(batch)
            except Exception as exc:
                self._on_error(exc)
                raise
            if last:
                for _ in range(taken):
                    self._slots.release()
            else:
                self._queues[index + 1].put_nowait(result)

    async def _gather(self, first: Any, inbox: asyncio.Queue[Any]) -> list[Any]:
        """``first`` and the batches behind it, as many as the ``Gathering`` asks for."""
        gathering = self._gathering
        assert gathering is not None
        batches = [first]
        deadline = asyncio.get_running_loop().time() + gathering.max_wait_s
        while True:
            while not inbox.empty():
                batches.append(inbox.get_nowait())
            enough = sum(map(gathering.size, batches)) >= gathering.min_items
            if enough or len(batches) >= self._max_in_flight:  # the latter: no other batch can come
                return batches
            try:
                # A get cancelled by the timeout has taken nothing: the batch stays for the next call.
                async with asyncio.timeout_at(deadline):
                    batches.append(await inbox.get())
            except TimeoutError:
                return batches

    async def stop(self) -> None:
        """Cancel the stages; batches still in the chain are dropped unfinished (and so not acked)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
