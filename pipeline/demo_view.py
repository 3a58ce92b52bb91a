"""The demo's live terminal view: what was ingested, what Redis counted, and each subject's mood."""

from __future__ import annotations

import subprocess
import threading
import time

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline.ingest.producer import Ingestor
from pipeline.query import window_rows
from pipeline.services import ServiceError
from pipeline.sinks.redis_live import RedisLive


def _render(live: RedisLive, ingestor: Ingestor, elapsed: float) -> Group:
    rows = window_rows(live, 5)
    counted = next((r["total"] for r in rows if r["subject"] == "*"), 0)
    header = Text(
        f"yuqing demo  {elapsed:5.0f}s   ingested {ingestor.stats.accepted}   "
        f"rejected {ingestor.stats.rejected}   counted in Redis (5m) {counted}   Ctrl-C stops",
        style="bold",
    )
    table = Table(title="last 5 minutes by subject (live, from Redis)")
    for column in ("subject", "total", "negative", "neutral", "positive", "negative share"):
        table.add_column(column, justify="left" if column == "subject" else "right")
    for row in rows[:12]:
        share = row["negative_share"]
        style = "bold red" if share >= 0.6 and row["total"] >= 20 else ""
        table.add_row(
            row["subject"],
            str(row["total"]),
            str(row["negative"]),
            str(row["neutral"]),
            str(row["positive"]),
            f"{share:.0%}",
            style=style,
        )
    return Group(header, table)


def show_live(live: RedisLive, ingestor: Ingestor, feed: threading.Thread, worker: subprocess.Popen[bytes]) -> None:
    """Refresh once a second until the feed ends (or Ctrl-C, which the caller handles)."""
    started = time.monotonic()
    with Live(_render(live, ingestor, 0), refresh_per_second=2) as view:
        while feed.is_alive():
            if worker.poll() is not None:
                raise ServiceError(f"the worker exited with code {worker.returncode}; see .yuqing/demo/worker.log")
            time.sleep(1)
            view.update(_render(live, ingestor, time.monotonic() - started))
