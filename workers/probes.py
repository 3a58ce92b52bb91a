"""The worker's HTTP port: ``/metrics`` for Prometheus, ``/healthz`` (alive) and ``/readyz`` (ready).

It runs in its own thread (``http.server``), not on faust's event loop: a scrape or a probe never waits
behind a batch, and ``/healthz`` can tell a stuck loop from a busy one by handing the loop a no-op and
timing the answer. faust's own web server was the other choice; it would serve its table and router
views too and share the loop it is meant to watch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import redis

from pipeline.observability.metrics import exposition
from pipeline.settings import Settings
from pipeline.stores.clickhouse.engines import open_engine, parse_engine_url

log = logging.getLogger(__name__)
OK = "ok"
LOOP_TIMEOUT_S = 5.0
STORE_TIMEOUT_S = 3.0
# Each readiness check: "ok", or what is not ready.
Checks = Callable[[], Mapping[str, str]]
Liveness = Callable[[], str]


def loop_answers(loop: asyncio.AbstractEventLoop | None, timeout_s: float = LOOP_TIMEOUT_S) -> str:
    """``ok`` when ``loop`` runs a no-op within ``timeout_s``; "starting" before there is a loop."""
    if loop is None:
        return "starting"
    if loop.is_closed():
        return "event loop closed"
    answer = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop)
    try:
        answer.result(timeout_s)
    except Exception as exc:  # a timeout or a loop that stopped: either way it is not alive
        answer.cancel()  # a stuck loop must not pile up a no-op per probe
        return f"event loop did not answer in {timeout_s:.0f}s: {type(exc).__name__}"
    return OK


def redis_reachable(settings: Settings) -> str:
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=STORE_TIMEOUT_S, socket_connect_timeout=STORE_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return OK


def clickhouse_reachable(settings: Settings) -> str:
    url = settings.clickhouse_url.get_secret_value()
    if parse_engine_url(url).kind != "server":
        return OK  # chDB runs in this process: a second session on its folder would only disturb the sink's
    engine = open_engine(url)
    try:
        engine.select("SELECT 1 AS one")
    finally:
        engine.close()
    return OK


def run_checks(checks: Mapping[str, Callable[[], str]]) -> dict[str, str]:
    """Every check's answer; a check that raises answers its error's type and first line, never a secret."""
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            report[name] = check()
        except Exception as exc:  # the failure is the answer
            first = str(exc).splitlines()[0] if str(exc) else ""
            report[name] = f"unreachable: {type(exc).__name__}: {first}"[:200]
    return report


class ProbeServer:
    """Serves the three paths from a daemon thread until ``stop``."""

    def __init__(self, host: str, port: int, liveness: Liveness, readiness: Checks) -> None:
        self.host, self.port = host, port
        self._liveness, self._readiness = liveness, readiness
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> bool:
        """Listen; False (logged) when the port cannot be had, e.g. another worker on this host holds it."""
        try:
            self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        except OSError as exc:
            log.warning(
                "worker HTTP port %s:%d unavailable, serving no metrics or probes: %s", self.host, self.port, exc
            )
            return False
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="yuqing-probes", daemon=True).start()
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        probes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, content_type = exposition()
                    self._send(200, body, content_type)
                elif path == "/healthz":
                    status = probes._liveness()
                    self._json(200 if status in (OK, "starting") else 503, {"status": status})
                elif path == "/readyz":
                    checks = dict(probes._readiness())
                    ready = all(value == OK for value in checks.values())
                    self._json(200 if ready else 503, {"ready": ready, "checks": checks})
                else:
                    self._json(404, {"error": "not found: /metrics, /healthz and /readyz are served"})

            def _json(self, status: int, body: object) -> None:
                self._send(status, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape every few seconds would drown the worker's log

        return Handler


class _Consumer(Protocol):
    def assignment(self) -> set[Any]: ...
    def highwater(self, tp: Any) -> int | None: ...


def partition_lags(consumer: _Consumer, committed: Mapping[Any, int | None]) -> dict[tuple[str, int], int]:
    """Messages between each held partition's committed offset and its end. Before the group's first
    commit on a partition, everything up to its end counts as lag (the group starts at the earliest)."""
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue  # not fetched yet: unknown, not zero
        lags[(tp.topic, tp.partition)] = max(end - (committed.get(tp) or 0), 0)
    return lags
