"""A ClickHouse that stops answering ties up a bounded number of history requests; the rest are told 503 at
once, and liveness and live reads keep answering."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.api import ServeFactory
from tests.support.records import now_minute
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SLOW_QUERIES = 50
SINCE = (now_minute() - timedelta(minutes=10)).isoformat()


def test_healthz_answers_while_50_history_queries_hang(serve: ServeFactory, clickhouse_server_url: str) -> None:
    base = urlsplit(clickhouse_server_url)
    with TcpProxy(base.port or 9000) as proxy:
        netloc = base.netloc.replace(f":{base.port}", f":{proxy.port}")
        url = urlunsplit((base.scheme, netloc, f"/yq_slow_{uuid.uuid4().hex[:8]}", base.query, ""))
        api = serve(clickhouse_url=url)
        assert api.client.get("/api/v1/history/series", params={"since": SINCE}).status_code == 200
        proxy.stall()
        answers: list[int] = []

        def ask() -> None:
            with httpx.Client(base_url=api.url, timeout=60) as client:
                try:
                    answers.append(client.get("/api/v1/history/series", params={"since": SINCE}).status_code)
                except httpx.HTTPError:
                    answers.append(0)

        threads = [threading.Thread(target=ask) for _ in range(SLOW_QUERIES)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the slow ones are now queued on the stalled store
        for _ in range(5):
            started = time.monotonic()
            assert api.client.get("/healthz").status_code == 200
            assert api.client.get("/api/v1/aggregates", params={"window": "5m"}).status_code == 200
            assert time.monotonic() - started < 1.0  # the bound the issue sets for liveness under load
        busy = len(answers)
        assert busy >= SLOW_QUERIES - 4 and set(answers) == {503}  # turned away at once, not queued
        proxy.cut()  # the stalled ones fail now instead of waiting out the driver's timeout
        proxy.flow()
        for thread in threads:
            thread.join(timeout=60)
    assert len(answers) == SLOW_QUERIES
