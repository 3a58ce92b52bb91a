"""Waiting on processes and services without blind sleeps."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from pipeline.settings import Settings

# Starts a worker process with these settings; the ``workers`` fixture stops every one it started.
WorkerFactory = Callable[[Settings], subprocess.Popen[bytes]]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.25)
