"""Access: read and admin tokens, open read-only mode, malformed tokens, CORS off unless configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.api import ApiError
from pipeline.api.auth import Scope, TokenTable
from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from tests.support.api import ADMIN_TOKEN, READ_TOKEN, TOKENS, ServeFactory, assert_problem, bearer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SUBJECT = {"name": "云帆", "include": [["云帆", "Yunfan"]]}
READS = ["/api/v1/session", "/api/v1/aggregates", "/api/v1/series", "/api/v1/alerts", "/api/v1/subjects"]


def test_with_tokens_every_read_needs_one_and_writes_need_admin(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    client = api.client
    for path in READS:
        response = client.get(path)
        assert_problem(response, 401, "missing token")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.get(path, headers=bearer(READ_TOKEN)).status_code == 200
        assert client.get(path, headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.get("/api/v1/session", headers=bearer(READ_TOKEN)).json()["scope"] == "read"
    assert client.get("/api/v1/session", headers=bearer(ADMIN_TOKEN)).json() == {
        "scope": "admin", "anonymous": False, "dashboard_url": "http://dashboard.test"
    }  # fmt: skip
    assert client.get("/healthz").status_code == 200  # health needs no token
    assert_problem(client.get("/api/v1/stream"), 401, "missing token")

    assert_problem(client.post("/api/v1/subjects", json=SUBJECT, headers=bearer(READ_TOKEN)), 403, "admin scope")
    assert_problem(client.delete("/api/v1/subjects/云帆", headers=bearer(READ_TOKEN)), 403, "admin scope")
    assert client.post("/api/v1/subjects", json=SUBJECT, headers=bearer(ADMIN_TOKEN)).status_code == 201
    assert client.delete("/api/v1/subjects/云帆", headers=bearer(ADMIN_TOKEN)).status_code == 204


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",  # no token
        "Basic dXNlcjpwYXNz",  # another scheme
        f"Token {READ_TOKEN}",
        "Bearer short",  # below 16 characters
        "Bearer " + "x" * 300,  # oversized
        "Bearer abc def ghi jkl mno pqr",  # spaces
        "Bearer ' OR '1'='1' -- padding",
        f"Bearer {READ_TOKEN}\u00e9",  # non-ASCII
    ],
)
def test_malformed_authorization_headers_are_401(serve: ServeFactory, header: str) -> None:
    api = serve(tokens=TOKENS)
    response = api.client.get("/api/v1/aggregates", headers={"Authorization": header.encode("utf-8")})  # type: ignore[dict-item]
    assert response.status_code == 401, response.text
    assert "error" in response.json()


def test_a_wellformed_but_unknown_token_is_401(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    assert_problem(api.client.get("/api/v1/alerts", headers=bearer(READ_TOKEN + "x")), 401, "unknown token")
    assert_problem(api.client.get("/api/v1/alerts", headers=bearer(READ_TOKEN[:-1])), 401, "unknown token")


def test_without_tokens_reads_are_open_and_writes_refused(serve: ServeFactory) -> None:
    api = serve()
    for path in READS:
        assert api.client.get(path).status_code == 200, path
    assert api.client.get("/api/v1/session").json()["anonymous"] is True
    assert_problem(api.client.post("/api/v1/subjects", json=SUBJECT), 403, "YUQING_API_TOKENS")
    assert_problem(api.client.post("/api/v1/alerts/a1/acknowledge"), 403, "read-only")
    # A token nobody configured is still refused, not silently ignored.
    assert_problem(api.client.get("/api/v1/alerts", headers=bearer(ADMIN_TOKEN)), 401, "unknown token")


def test_token_table_compares_every_token_and_keeps_the_highest_scope() -> None:
    table = TokenTable.parse(f" {READ_TOKEN}:read , {READ_TOKEN}:admin,{ADMIN_TOKEN}:read ")
    assert table.scope_of(READ_TOKEN) is Scope.ADMIN
    assert table.scope_of(ADMIN_TOKEN) is Scope.READ
    assert table.scope_of("nope-nope-nope-nope") is None
    assert TokenTable.parse("").open and TokenTable.parse(" , ").open


@pytest.mark.parametrize(
    "spec",
    ["justatoken0123456789", "tok:root", "short:read", "bad token with spaces:read", f"{READ_TOKEN}:"],
)
def test_bad_token_configuration_stops_the_api_without_echoing_the_token(spec: str) -> None:
    with pytest.raises(ApiError, match="YUQING_API_TOKENS entry 1") as raised:
        TokenTable.parse(spec)
    secret = spec.rpartition(":")[0] or spec
    assert len(secret) < 8 or secret not in str(raised.value)


def test_cors_is_off_unless_configured(serve: ServeFactory) -> None:
    origin = {"Origin": "http://elsewhere.test"}
    plain = serve()
    response = plain.client.get("/api/v1/aggregates", headers=origin)
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    preflight = {**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    assert "access-control-allow-origin" not in plain.client.options("/api/v1/aggregates", headers=preflight).headers

    allowed = serve(cors="http://elsewhere.test, http://other.test")
    response = allowed.client.get("/api/v1/aggregates", headers=origin)
    assert response.headers["access-control-allow-origin"] == "http://elsewhere.test"
    answer = allowed.client.options("/api/v1/aggregates", headers=preflight)
    assert answer.status_code == 200 and "authorization" in answer.headers["access-control-allow-headers"].lower()
    stranger = allowed.client.get("/api/v1/aggregates", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in stranger.headers


def test_writes_are_judged_before_their_body_is_read(serve: ServeFactory) -> None:
    api = serve(tokens=TOKENS)
    big = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    # No token, a read token, an unknown token: refused on the headers, whatever the body.
    assert_problem(api.client.post("/api/v1/subjects", content=big), 401, "missing token")
    assert_problem(api.client.post("/api/v1/subjects", content=big, headers=bearer(READ_TOKEN)), 403, "admin")
    assert_problem(api.client.post("/api/v1/subjects", content=big, headers=bearer("u" * 20)), 401, "unknown token")
    # An admin's oversized body: 413 before any parsing.
    assert_problem(api.client.post("/api/v1/subjects", content=big, headers=bearer(ADMIN_TOKEN)), 413, "over")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while the body streams in
        yield b'{"name": "'
        for _ in range(4):
            yield b"y" * (32 * 1024)
        yield b'"}'

    streamed = api.client.post("/api/v1/subjects", content=chunks(), headers=bearer(ADMIN_TOKEN))
    assert_problem(streamed, 413, "over")
    # Routing still answers for what is not a write route.
    assert api.client.post("/api/v1/aggregates", headers=bearer(ADMIN_TOKEN)).status_code == 405


def test_the_api_refuses_to_listen_beyond_loopback_without_tokens(api_settings: Settings) -> None:
    with pytest.raises(ApiError, match="YUQING_API_TOKENS"):
        ApiServer(api_settings, "0.0.0.0", 0)
    # Either a token table or an explicit choice of anonymous reading lets it listen there.
    ApiServer(api_settings.model_copy(update={"api_anonymous_read": True}), "0.0.0.0", 0)
    ApiServer(api_settings.model_copy(update={"api_tokens": type(api_settings.api_tokens)(TOKENS)}), "0.0.0.0", 0)
