"""Live updates over server-sent events fed by Redis pub/sub, and the server's own life cycle."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipeline.api import ApiError
from pipeline.api.server import ApiServer
from pipeline.api.sse import MAX_STREAMS_PER_CALLER
from pipeline.cli.main import main
from tests.support.api import (
    ADMIN_TOKEN,
    READ_TOKEN,
    TOKENS,
    Served,
    ServeFactory,
    assert_problem,
    bearer,
    make_alert,
    save_alert,
)
from tests.support.records import scored, write_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) per server-sent event of a streaming response."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []


def next_event(stream: Iterator[tuple[str, Any]], wanted: str) -> Any:
    for name, data in stream:
        if name == wanted:
            return data
    raise AssertionError(f"the stream ended before a {wanted} event")


def test_stream_sends_hello_live_alert_and_heartbeat_events(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS, heartbeat_s=0.5)
    with api.client.stream("GET", "/api/v1/stream", headers=bearer(READ_TOKEN)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        assert next_event(stream, "hello") == {"channels": ["live", "alert"]}
        write_live(api.settings, [scored("s1", "negative"), scored("s2", "positive")])
        live = next_event(stream, "live")
        assert live["counted"] == 2 and len(live["minutes"]) >= 1
        save_alert(api.settings, make_alert("alert-1"))
        alert = next_event(stream, "alert")
        assert alert["id"] == "alert-1" and alert["evidence"]["top_posts"][0]["post_id"] == "ev-1"
        assert "at" in next_event(stream, "heartbeat")


def test_stream_needs_a_token_when_tokens_are_configured(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    assert_problem(api.client.get("/api/v1/stream"), 401, "missing token")
    assert_problem(api.client.get("/api/v1/stream", params={"token": READ_TOKEN}), 400, "unknown query parameter")


def test_stop_ends_open_streams_quickly(serve: ServeFactory) -> None:
    api = serve(heartbeat_s=30)
    received: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{api.url}/api/v1/stream", timeout=30) as response:
                for name, _data in events(response):
                    received.append(name)
        except httpx.HTTPError:
            received.append("closed")

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    deadline = time.monotonic() + 10
    while "hello" not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == ["hello"]
    started = time.monotonic()
    api.server.stop()
    reader.join(10)
    assert not reader.is_alive() and time.monotonic() - started < 6


def test_a_taken_port_is_an_api_error(api: Served) -> None:
    second = ApiServer(api.settings, "127.0.0.1", api.server.port)
    with pytest.raises(ApiError, match="could not listen"):
        second.start()


def test_server_reports_its_url_and_health(api: Served) -> None:
    assert api.url.startswith("http://127.0.0.1:") and api.server.port > 0
    assert httpx.get(f"{api.url}/healthz", timeout=5).json()["status"] == "ok"


def test_cli_has_the_api_command() -> None:
    result = CliRunner().invoke(main, ["api", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "YUQING_API_TOKENS" in result.output


def test_one_caller_cannot_hold_every_stream(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    with contextlib.ExitStack() as held:
        readers = []  # kept: a reader dropped half-way closes its response, and its stream with it
        for _ in range(MAX_STREAMS_PER_CALLER):
            response = held.enter_context(api.client.stream("GET", "/api/v1/stream", headers=bearer(READ_TOKEN)))
            assert response.status_code == 200
            readers.append(events(response))
            next_event(readers[-1], "hello")
        assert_problem(api.client.get("/api/v1/stream", headers=bearer(READ_TOKEN)), 503, "per caller")
        with api.client.stream("GET", "/api/v1/stream", headers=bearer(ADMIN_TOKEN)) as other:
            assert other.status_code == 200  # another caller still gets one
    # Closed streams give their slots back.
    with api.client.stream("GET", "/api/v1/stream", headers=bearer(READ_TOKEN)) as again:
        assert again.status_code == 200
