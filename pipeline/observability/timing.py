"""Per-stage time accounting for an agent: plain sums during a batch, published to the metrics after it.

A labelled counter's increment takes a lock, so per post it would cost something measurable; a dict of
floats does not, and one publish per batch keeps the counters' cost to a few increments a batch.
One clock per agent, used by one thread at a time: the agent hands it to the thread it awaits (the text
thread) and takes it back when the await returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.observability import metrics


class StageClock:
    """Seconds and records per stage of one agent, since the last ``publish``."""

    __slots__ = ("_records", "_seconds", "agent")

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._seconds: dict[str, float] = {}
        self._records: dict[str, int] = {}

    def add(self, stage: str, seconds: float, records: int = 1) -> None:
        self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds
        self._records[stage] = self._records.get(stage, 0) + records

    @contextmanager
    def timed(self, stage: str, records: int) -> Iterator[None]:
        """Time the block as ``records`` records of ``stage`` (once per batch: a context manager is not free)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started, records)

    def totals(self) -> dict[str, tuple[float, int]]:
        """(seconds, records) per stage since the last publish."""
        return {stage: (seconds, self._records[stage]) for stage, seconds in self._seconds.items()}

    def publish(self) -> None:
        """Add the sums to the metrics and start again from zero."""
        for stage, (seconds, records) in self.totals().items():
            metrics.observe_stage(self.agent, stage, seconds, records)
        self._seconds.clear()
        self._records.clear()
