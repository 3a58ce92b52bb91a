"""Where a bench run's CPU goes: each process's CPU over a timed window, per post and in cores.

The embedded services share the machine with the worker, so a worker's end-to-end rate on 2 cores is
also the broker's, Redis's and ClickHouse's: this table tells the worker's own cost from theirs. A
process's figure includes its descendants' that no other named process claims (the worker's text
processes); ``rest_of_machine`` is the machine's busy CPU less the named processes' (a ClickHouse
server, the system).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import psutil

DEFINITION = (
    "CPU seconds (user + system) of each process and its descendants over the end-to-end timed window, per "
    "timed post and as cores busy; rest_of_machine is the machine's busy CPU less the named processes'"
)


def _cpu_s_by_name(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds of each named process and its living descendants, each process counted under its
    nearest named ancestor (the bench's own process names the workers and the broker it started)."""
    trees: dict[str, list[psutil.Process]] = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            trees[name] = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            trees[name] = []
    owner: dict[int, tuple[str, psutil.Process]] = {}
    for name, tree in sorted(trees.items(), key=lambda item: -len(item[1])):  # deeper trees are smaller
        owner.update((member.pid, (name, member)) for member in tree)
    totals = dict.fromkeys(pids, 0.0)
    for name, member in owner.values():
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        totals[name] += times.user + times.system
    return totals


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuMeter:
    """Reads the named processes' CPU at ``start`` and ``stop``; ``report`` gives the difference."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._start: tuple[float, float, dict[str, float]] | None = None
        self._stop: tuple[float, float, dict[str, float]] | None = None

    def _read(self) -> tuple[float, float, dict[str, float]]:
        return time.perf_counter(), _machine_busy_s(), _cpu_s_by_name(self.pids)

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> None:
        self._stop = self._read()

    def report(self, posts: int) -> dict[str, Any]:
        if self._start is None or self._stop is None or posts <= 0:
            return {"definition": DEFINITION, "window_s": None}
        (t0, busy0, named0), (t1, busy1, named1) = self._start, self._stop
        seconds = {name: named1[name] - named0[name] for name in self.pids}
        seconds["rest_of_machine"] = max(0.0, (busy1 - busy0) - sum(seconds.values()))
        window = t1 - t0
        return {
            "definition": DEFINITION,
            "window_s": round(window, 2),
            "cpu_count": psutil.cpu_count(),
            "us_per_post": {name: round(s / posts * 1e6, 1) for name, s in seconds.items()},
            "cores": {name: round(s / window, 2) for name, s in seconds.items()} if window > 0 else {},
        }
