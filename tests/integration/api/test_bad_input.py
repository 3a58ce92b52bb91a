"""Bad input gets a clear 4xx with a reason, never a 500 and never a query built from it.

Besides the named cases, every parameter of every endpoint in the OpenAPI description is sent each
of a set of injection attempts, and the stores are checked to be intact afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from pipeline.stores.clickhouse.history import ClickHouseHistory
from tests.support.api import ADMIN_TOKEN, TOKENS, Served, ServeFactory, assert_problem, bearer, make_alert, save_alert
from tests.support.records import now_minute, scored, write_history, write_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE scored_posts; --",
    "云帆') UNION SELECT text FROM system.tables --",
    "{since:UInt32}",
    "%(since)s",
    "\x00",
    "\t*\t",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "ａ" * 65,
    "",
]


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("/api/v1/aggregates", {"window": "0m"}, 400, "outside 1m..24h"),
        ("/api/v1/aggregates", {"window": "25h"}, 400, "outside 1m..24h"),
        ("/api/v1/aggregates", {"window": "2d"}, 400, "outside 1m..24h"),
        ("/api/v1/series", {"window": "5 minutes"}, 400, "window"),
        ("/api/v1/series", {"window": "1h; DROP"}, 400, "window"),
        ("/api/v1/hot-words", {"window": "-5m"}, 400, "window"),
        ("/api/v1/series", {"subject": "没有这个"}, 404, "unknown subject"),
        ("/api/v1/hot-words", {"subject": "x" * 65}, 400, "subject"),
        ("/api/v1/aggregates", {"subject": "a\nb"}, 400, "subject"),
        ("/api/v1/posts", {"limit": "501"}, 400, "limit"),
        ("/api/v1/posts", {"limit": "0"}, 400, "limit"),
        ("/api/v1/posts", {"limit": str(10**30)}, 400, "limit"),
        ("/api/v1/posts", {"offset": "100001"}, 400, "offset"),
        ("/api/v1/posts", {"offset": "-1"}, 400, "offset"),
        ("/api/v1/alerts", {"limit": "1000"}, 400, "limit"),
        ("/api/v1/posts", {"sentiment": "angry"}, 400, "sentiment"),
        ("/api/v1/posts", {"platform": "weibo' OR 1=1"}, 400, "platform"),
        ("/api/v1/posts", {"deduplicated": "maybe"}, 400, "deduplicated"),
        ("/api/v1/alerts", {"state": "open"}, 400, "state"),
        ("/api/v1/top-subjects", {"n": "101"}, 400, "'n'"),
        ("/api/v1/posts", {"since": "2024-13-01"}, 400, "ISO 8601"),
        ("/api/v1/posts", {"subjct": "云帆"}, 400, "unknown query parameter"),
        ("/api/v1/aggregates", [("window", "5m"), ("window", "1h")], 400, "more than once"),
        ("/api/v1/alerts/a%20b", {}, 400, "alert_id"),
        ("/api/v1/alerts/unknown-id", {}, 404, "no alert"),
        ("/api/v1/nothing", {}, 404, "no such endpoint"),
    ],
)
def test_named_bad_inputs(api: Served, path: str, params: Any, status: int, fragment: str) -> None:
    assert_problem(api.client.get(path, params=params), status, fragment)


def test_wrong_methods_are_405(api: Served) -> None:
    assert_problem(api.client.delete("/api/v1/aggregates"), 405)
    assert_problem(api.client.post("/api/v1/alerts"), 405)


def _parameters(spec: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, location, name) of every parameter in the OpenAPI description."""
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path"):
                    found.append((method, path, parameter["in"], parameter["name"]))
    return found


def _call(client: httpx.Client, method: str, path: str, where: str, name: str, value: str) -> httpx.Response:
    admin = bearer(ADMIN_TOKEN)
    body = {"name": "云帆", "include": [["云帆"]]} if method == "put" else None
    if where == "path":
        target = path.replace("{" + name + "}", quote(value, safe="") or "%20")
        return client.request(method.upper(), target, headers=admin, json=body)
    target = path
    for other in ("{alert_id}", "{name}"):
        target = target.replace(other, "a1")
    return client.request(method.upper(), target, params={name: value}, headers=admin, json=body)


def test_injection_attempts_in_every_parameter_are_4xx_and_change_nothing(
    serve: ServeFactory, clickhouse_url: str
) -> None:
    api = serve(tokens=TOKENS, clickhouse_url=clickhouse_url)
    posts = [scored(f"p{i}", "negative", ("云帆",), at=now_minute() - timedelta(minutes=1)) for i in range(5)]
    write_live(api.settings, posts)
    write_history(clickhouse_url, posts)
    save_alert(api.settings, make_alert("a1"))
    spec = api.client.get("/api/v1/openapi.json").json()
    parameters = _parameters(spec)
    assert len(parameters) >= 30, parameters  # every endpoint's parameters are described

    answers: dict[int, int] = {}
    for method, path, where, name in parameters:
        for value in INJECTIONS:
            response = _call(api.client, method, path, where, name, value)
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
            context = (method, path, name, value, response.status_code, response.text[:200])
            assert 400 <= response.status_code < 500, context
            if response.headers.get("content-type", "").startswith("application/json"):
                assert response.json().get("error"), context

    # Nothing was dropped, changed or acknowledged.
    with ClickHouseHistory.from_url(clickhouse_url) as history:
        assert history.total_posts() == 5
    ok = api.client.get("/api/v1/aggregates", params={"subject": "云帆"}, headers=bearer(ADMIN_TOKEN)).json()
    assert ok["subjects"][0]["raw"]["total"] == 5
    alert = api.client.get("/api/v1/alerts/a1", headers=bearer(ADMIN_TOKEN)).json()["alert"]
    assert alert["acknowledged_at"] is None
    assert set(answers) <= {400, 404, 405, 422}, answers
