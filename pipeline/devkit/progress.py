"""Progress of long local work (the demo's history, benches): count, rate and time left, on stderr.

Shown only to a person at a terminal: with ``--json``, in a pipe or in a log file a bar's redraws
would be noise, so ``enabled`` is false there and the bar costs nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class Advance(Protocol):
    def __call__(self, completed: int) -> None: ...


class _Rate(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self._unit}/s" if speed else f"– {self._unit}/s", style="progress.data.speed")


def show_progress(enabled: bool) -> bool:
    """Whether to draw a bar: asked for, and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


@contextmanager
def progress_bar(
    description: str, total: int | None, *, unit: str = "posts", enabled: bool = True
) -> Iterator[Advance]:
    """Yields ``report(completed)``, the absolute count so far; draws only when ``show_progress(enabled)``."""
    if not show_progress(enabled):
        yield lambda completed: None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        refresh_per_second=2,  # benches measure while it draws: a slow redraw takes next to no CPU
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda completed: progress.update(task, completed=completed)
