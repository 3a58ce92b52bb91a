"""Micro-batches through a chain of async stages, each stage busy with a different batch.

While the model scores batch n, batch n+1 is prepared and batch n-1 delivered. Each stage takes one
batch at a time, in arrival order, so batches leave in the order they came; ``put`` waits while
``max_in_flight`` batches are between it and the end of the last stage, which bounds memory and the
work a crash leaves to be replayed. A stage that raises stops the chain: ``on_error`` decides what
then happens to the process (the worker exits without committing).

With ``last_takes_all``, the last stage takes every batch waiting for it at once, as a list in arrival
order: when it falls behind, its work on several batches becomes one call (one ClickHouse insert for
all of them), and when it keeps up, each batch goes alone, with no wait added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

Stage = Callable[[Any], Awaitable[Any]]


class StagePipeline:
    def __init__(
        self,
        stages: Sequence[Stage],
        max_in_flight: int,
        on_error: Callable[[BaseException], None],
        *,
        last_takes_all: bool = False,
    ) -> None:
        if not stages or max_in_flight < 1:
            raise ValueError("a pipeline needs at least one stage and max_in_flight >= 1")
        self._stages = list(stages)
        self._on_error = on_error
        self._last_takes_all = last_takes_all
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
        gathers = last and self._last_takes_all
        while True:
            batch = await inbox.get()
            taken = 1
            if gathers:
                batch = [batch]
                while not inbox.empty():
                    batch.append(inbox.get_nowait())
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

    async def stop(self) -> None:
        """Cancel the stages; batches still in the chain are dropped unfinished (and so not acked)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
