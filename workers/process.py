"""Running one worker process: its probes, the API when asked, everything loaded before the group is
joined, and faust's worker with a bounded stop."""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust

from pipeline.logs import adopt_handlers
from pipeline.settings import Settings
from workers.app import Worker, exit_without_commit
from workers.heap import settle_heap
from workers.probes import ProbeServer

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "INFO", *, with_api: bool = False) -> None:
    """Run one worker process until SIGTERM/SIGINT; faust commits what was acked on the way out."""
    worker = Worker(settings)
    if settings.worker_http_port:
        probes = ProbeServer(settings.worker_http_host, settings.worker_http_port, worker.liveness, worker.readiness)
        if probes.start():
            log.info("metrics and probes at http://%s:%d/", settings.worker_http_host, probes.port)
    if with_api:
        from pipeline.api.server import ApiServer

        worker.api = ApiServer(settings)
        worker.api.start()
        log.warning("dashboard and API at %s/", worker.api.url)
    if worker.scores:  # the model and jieba before joining the group, so the first batch is not slow
        _ = worker.runtime, worker.preparer
    if worker.stores:
        worker.prepare_sinks()
    settle_heap()  # the model, jieba, the subjects and the sinks are loaded: what stays from here is long-lived
    faust_worker = _BoundedStopWorker(
        worker.app, loglevel=loglevel, quiet=True, grace_s=settings.worker_stop_grace_s, settings=settings
    )
    if not sys.stdout.isatty() or settings.log_format == "json":
        faust_worker.spinner = None  # its terminal escapes would only litter a log file
    faust_worker.execute_from_commandline()


class _BoundedStopWorker(faust.Worker):  # type: ignore[misc]
    """faust's worker with a bounded stop. faust waits, before it stops the agents, until every message
    they took is acked, and an aggregate batch waiting out a store outage is not acked until stored;
    past the grace period the process leaves without acking it (see ``exit_without_commit``)."""

    def __init__(self, *args: Any, grace_s: float, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grace_s = grace_s
        self._settings = settings

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # faust has just replaced the root handlers with its own (colour text on stdout).
        adopt_handlers(self._settings, logger)
        super().on_setup_root_logger(logger, level)

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            reason = f"still stopping {self._grace_s:.0f}s after {signal.name}"
            self.loop.call_later(self._grace_s, exit_without_commit, reason)
        super()._schedule_shutdown(signal)
