"""The demo's live terminal view: what was ingested, each subject's raw and deduplicated mood, hot words."""

from __future__ import annotations

import subprocess
import time
from typing import Protocol

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline.devkit.embedded_services import ServiceError
from pipeline.stores.query import window_rows
from pipeline.stores.redis.live import RedisLive


class DemoFeeds(Protocol):
    """What the view reads of the demo's feeds (``pipeline.devkit.demo.DemoFeeds``)."""

    @property
    def accepted(self) -> int: ...

    @property
    def rejected(self) -> int: ...

    def is_alive(self) -> bool: ...


WINDOW_MINUTES = 5
COLUMNS = ("subject", "raw", "deduplicated", "negative", "neutral", "positive", "negative share*", "hot words*")


def _render(live: RedisLive, feeds: DemoFeeds, elapsed: float, dashboard: str) -> Group:
    rows = window_rows(live, WINDOW_MINUTES)
    counted = next((r["total"] for r in rows if r["subject"] == "*"), 0)
    header = Text(
        f"yuqing demo  {elapsed:5.0f}s   ingested {feeds.accepted}   rejected {feeds.rejected}   "
        f"counted in Redis ({WINDOW_MINUTES}m) {counted}   Ctrl-C stops\ndashboard: {dashboard}/",
        style="bold",
    )
    table = Table(title=f"last {WINDOW_MINUTES} minutes by subject (live, from Redis)", caption="* deduplicated")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("subject", "hot words*") else "right")
    for row in rows[:12]:
        share = row["deduplicated_negative_share"]
        words = " ".join(term for term, _ in live.hot_words(row["subject"], WINDOW_MINUTES, 5))
        table.add_row(
            row["subject"],
            str(row["total"]),
            str(row["deduplicated"]),
            str(row["negative"]),
            str(row["neutral"]),
            str(row["positive"]),
            f"{share:.0%}",
            words,
            style="bold red" if share >= 0.6 and row["deduplicated"] >= 20 else "",
        )
    return Group(header, table)


def show_live(live: RedisLive, feeds: DemoFeeds, worker: subprocess.Popen[bytes], dashboard: str) -> None:
    """Refresh once a second until the feeds end (or Ctrl-C, which the caller handles)."""
    started = time.monotonic()
    with Live(_render(live, feeds, 0, dashboard), refresh_per_second=2) as view:
        while feeds.is_alive():
            if worker.poll() is not None:
                raise ServiceError(f"the worker exited with code {worker.returncode}; see .yuqing/demo/worker.log")
            time.sleep(1)
            view.update(_render(live, feeds, time.monotonic() - started, dashboard))
