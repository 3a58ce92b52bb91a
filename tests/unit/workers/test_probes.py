"""The worker's HTTP port and its pure helpers: partition lag, loop liveness, readiness answers."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from workers.probes import OK, ProbeServer, loop_answers, partition_lags, run_checks


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, ends: dict[TP, int | None]) -> None:
        self.ends = ends

    def assignment(self) -> set[Any]:
        return set(self.ends)

    def highwater(self, tp: Any) -> int | None:
        return self.ends[tp]


def test_lag_runs_from_the_committed_offset_to_the_end() -> None:
    a, b, c, d = TP("raw", 0), TP("raw", 1), TP("scored", 0), TP("scored", 1)
    consumer = FakeConsumer({a: 100, b: 40, c: None, d: 7})
    lags = partition_lags(consumer, {a: 90, b: None, d: 9})
    # b: nothing committed yet, all of it is behind; c: end unknown, left out; d: never negative
    assert lags == {("raw", 0): 10, ("raw", 1): 40, ("scored", 1): 0}


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_a_running_loop_answers(running_loop: asyncio.AbstractEventLoop) -> None:
    assert loop_answers(running_loop) == OK
    assert loop_answers(None) == "starting"


def test_a_stuck_loop_does_not_answer() -> None:
    loop = asyncio.new_event_loop()  # never run: nothing will take the no-op
    try:
        assert loop_answers(loop, timeout_s=0.2).startswith("event loop did not answer")
    finally:
        loop.close()
    assert loop_answers(loop) == "event loop closed"


def test_a_failing_check_names_its_error() -> None:
    def down() -> str:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.\nmore")

    report = run_checks({"redis": down, "model": lambda: OK})
    assert report == {
        "redis": "unreachable: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused.",
        "model": OK,
    }


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_port_serves_metrics_and_probes() -> None:
    state = {"redis": OK}
    server = ProbeServer("127.0.0.1", 0, lambda: OK, lambda: {"model": OK, **state})
    assert server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = get(f"{base}/metrics")
        assert status == 200 and "process_resident_memory_bytes" in body
        assert get(f"{base}/healthz") == (200, json.dumps({"status": "ok"}))
        status, body = get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        state["redis"] = "unreachable: ConnectionError"
        status, body = get(f"{base}/readyz")
        assert status == 503
        assert json.loads(body) == {"ready": False, "checks": {"model": OK, "redis": "unreachable: ConnectionError"}}
        assert get(f"{base}/other")[0] == 404
    finally:
        server.stop()


def test_a_taken_port_is_skipped_not_fatal() -> None:
    first = ProbeServer("127.0.0.1", 0, lambda: OK, dict)
    assert first.start()
    try:
        assert not ProbeServer("127.0.0.1", first.port, lambda: OK, dict).start()
    finally:
        first.stop()
