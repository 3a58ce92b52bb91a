"""Schemathesis against the OpenAPI descriptions of the API and of the ingest endpoint: no 5xx and no
schema violations.

Every operation of ``/api/v1/openapi.json`` but the SSE stream is sent generated requests, valid and
invalid ones (schemathesis' positive and negative modes: its coverage phase's boundary values, then a
bounded, derandomized fuzzing phase), at a real ``ApiServer`` over real Redis and ClickHouse (the 18.16
server and chDB) holding posts, alerts and monitored subjects. Each answer must be

- no server error (``not_a_server_error``): bad input is a 4xx, never a 500;
- a status code the operation declares (``status_code_conformance``);
- of a content type it declares (``content_type_conformance``);
- a body that validates against the schema declared for its status (``response_schema_conformance``).

Requests carry an admin token, so the writes (acknowledging alerts; creating, changing and deleting
subjects) are exercised too; ``test_auth`` covers what other tokens and no token get. The success answers
of the writes, which generated bodies seldom reach, are checked the same way with valid bodies, and so
are oversized writes (413). With Redis or ClickHouse unreachable, the answers are 503s, which must be
declared and shaped as declared too.

The ingest app (``POST /posts``, ``GET /health``) gets the same over the test broker, open and guarded by
a token the generated requests do not carry.

Each description is taken from its app at collection time (schemathesis makes one test per operation
then) and checked to be the one the app serves.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import hypothesis
import pytest
import redis
import schemathesis
from fastapi import FastAPI
from pydantic import SecretStr
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.api.app import API_PREFIX, create_app
from pipeline.api.guard import MAX_BODY_BYTES
from pipeline.api.server import ApiServer
from pipeline.domain.subjects.model import Subject
from pipeline.ingest.http import make_app
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.stores.clickhouse.engines import open_engine, parse_engine_url
from pipeline.stores.redis.live import connect, delete_prefix
from pipeline.stores.redis.subjects import SubjectStore
from tests.support.api import ADMIN_TOKEN, TOKENS, Served, bearer, make_alert, save_alert
from tests.support.records import now_minute, scored, write_history, write_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ADMIN = bearer(ADMIN_TOKEN)
GeneratedCase = schemathesis.Case[Any]
# Generated cases per operation in the fuzzing phase (the coverage phase adds its boundary values).
MAX_EXAMPLES = 50
# Names a generator reaches first ("0" is Hypothesis' simplest string) besides realistic ones, so that
# some generated subjects and alert ids hit stored data instead of a 404.
SUBJECTS = ("云帆", "星河", "0")
ALERT_IDS = ("a1", "a2", "0")


def fuzzing(max_examples: int) -> hypothesis.settings:
    """Repeatable runs (derandomized, no example database) with no per-example deadline: the requests
    reach real stores."""
    return hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )


def _description() -> dict[str, object]:
    """The OpenAPI description, from an app that is never served (it opens no connection)."""
    app = create_app(Settings(redis_prefix="yqtest-openapi-unused"))
    try:
        return app.openapi()
    finally:
        app.state.api.close()


DESCRIPTION = _description()
# GET /api/v1/stream is server-sent events: its answer never ends, so a generated request would wait
# forever for the body to validate. test_stream covers it.
schema = schemathesis.openapi.from_dict(DESCRIPTION).exclude(path=f"{API_PREFIX}/stream")


def _database_url(engine: str, request: pytest.FixtureRequest, database: str) -> str:
    """A URL to ``database`` on the 18.16 server or in this process's chDB folder (as tests.plugins.clickhouse)."""
    if engine == "server":
        base = urlsplit(str(request.getfixturevalue("clickhouse_server_url")))
        return urlunsplit((base.scheme, base.netloc, f"/{database}", base.query, ""))
    return f"chdb://{request.getfixturevalue('chdb_folder')}?database={database}"


def _seed(api: Served, clickhouse_url: str) -> None:
    """Posts (live and history) of every subject, the subjects as monitored, and alerts in two states."""
    minute = now_minute() - timedelta(minutes=2)
    posts = [
        scored(
            f"p{i:02d}",
            "negative" if i % 3 else "positive",
            (SUBJECTS[i % len(SUBJECTS)],),
            at=minute + timedelta(seconds=3 * i),
            platform="douyin" if i % 2 else "weibo",
            terms=("电池", "爆炸") if i % 3 else ("好评",),
            cluster_id="p01" if i in (4, 7) else None,
            duplicate=i in (4, 7),
            bot=i == 5,
        )
        for i in range(18)
    ]
    write_history(clickhouse_url, posts)
    write_live(api.settings, posts)
    client = connect(api.settings)
    monitored = [Subject(name=name, include=((name, "手机"),), exclude=("路",)) for name in SUBJECTS]
    SubjectStore(client, api.settings.redis_prefix).edit(lambda current: current.revised(monitored))
    client.close()
    for i, alert_id in enumerate(ALERT_IDS):
        save_alert(api.settings, make_alert(alert_id, SUBJECTS[i], state="resolved" if i == 1 else "opened"))


def _run(settings: Settings) -> str:
    """The API run's name in the summary: by its ClickHouse engine."""
    return "api over " + settings.clickhouse_url.get_secret_value().split(":", 1)[0]


# Answers per (run, operation, status): the summary printed after this module's tests (pytest -s).
ANSWERED: Counter[tuple[str, str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _print_answers() -> Iterator[None]:
    yield
    for run in sorted({key[0] for key in ANSWERED}):
        answers = sorted((key, n) for key, n in ANSWERED.items() if key[0] == run)
        print(f"\nschemathesis answers ({run}): {sum(n for _key, n in answers)} requests")
        for (_run, label, status), n in answers:
            print(f"  {label}: {status} x{n}")
    ANSWERED.clear()


@pytest.fixture(scope="module", params=["server", "chdb"])
def fuzzed_api(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Served]:
    """One API with admin and read tokens, over seeded stores, for all operations of one engine.

    Module-scoped (seeding once, not once per operation), so it builds what ``serve`` and
    ``clickhouse_url`` give a single test.
    """
    engine = str(request.param)
    test_id = uuid.uuid4().hex[:10]
    clickhouse_url = _database_url(engine, request, f"yq_fuzz_{test_id}")
    settings = Settings(
        redis_url=SecretStr(redis_url),
        redis_prefix=f"yqtest-fuzz-{test_id}",
        clickhouse_url=SecretStr(clickhouse_url),
        api_tokens=SecretStr(TOKENS),
        dashboard_url="http://dashboard.test",
    )
    server = ApiServer(settings, "127.0.0.1", 0, heartbeat_s=0.5)
    server.start()
    api = Served(server, httpx.Client(base_url=server.url, timeout=20), settings)
    try:
        _seed(api, clickhouse_url)
        yield api
    finally:
        api.client.close()
        server.stop()
        delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), settings.redis_prefix)
        store = open_engine(clickhouse_url)
        try:
            store.execute(f"DROP DATABASE IF EXISTS {parse_engine_url(clickhouse_url).database}")
        finally:
            store.close()


def test_the_fuzzed_description_is_the_served_one(fuzzed_api: Served) -> None:
    assert fuzzed_api.client.get(f"{API_PREFIX}/openapi.json").json() == DESCRIPTION


@schema.parametrize()
@fuzzing(MAX_EXAMPLES)
def test_every_operation_answers_as_described(case: GeneratedCase, fuzzed_api: Served) -> None:
    response = case.call_and_validate(base_url=fuzzed_api.url, headers=ADMIN, checks=CHECKS)
    ANSWERED[(_run(fuzzed_api.settings), case.operation.label, response.status_code)] += 1


# Bodies the subject rules accept: they ask more than the description says (non-blank, distinct terms, a
# name not reserved...), so generated bodies are nearly always refused, and the success answers are sent here.
VALID_SUBJECTS: list[dict[str, object]] = [
    {"name": "新主题", "include": [["新主题", "New topic"]]},
    {
        "name": "全字段",
        "include": [["手机", "phone"], ["电池", "battery"]],
        "exclude": ["充电宝"],
        "platforms": ["weibo", "douyin"],
        "description": "关于手机电池的讨论",
        "similarity_threshold": 0.9,
    },
]


def test_successful_writes_answer_as_described(fuzzed_api: Served) -> None:
    def send(path: str, method: str, status: int, **parts: Any) -> None:
        case = schema[f"{API_PREFIX}{path}"][method].Case(**parts)
        response = case.call_and_validate(base_url=fuzzed_api.url, headers=ADMIN, checks=CHECKS)
        assert response.status_code == status, response.text

    for body in VALID_SUBJECTS:
        name = {"name": body["name"]}
        send("/subjects", "POST", 201, body=body)
        send("/subjects/{name}", "GET", 200, path_parameters=name)
        send("/subjects/{name}", "PUT", 200, path_parameters=name, body={**body, "exclude": ["路边"]})
        send("/subjects/{name}", "DELETE", 204, path_parameters=name)
    send("/alerts/{alert_id}/acknowledge", "POST", 200, path_parameters={"alert_id": "a1"}, body={"by": "值班"})
    send("/alerts/{alert_id}/acknowledge", "POST", 200, path_parameters={"alert_id": "a2"})
    # Past the write cap (pipeline.api.guard): refused before the body is read.
    oversized = {"name": "大", "include": [[f"词{i:05d}" for i in range(MAX_BODY_BYTES // 8)]]}
    send("/subjects", "POST", 413, body=oversized)
    send("/subjects/{name}", "PUT", 413, path_parameters={"name": "大"}, body=oversized)
    send(
        "/alerts/{alert_id}/acknowledge",
        "POST",
        413,
        path_parameters={"alert_id": "a1"},
        body={"by": "x" * MAX_BODY_BYTES},
    )


# With a store down the answer is a 503 (a server error, so not_a_server_error is left out here), and it
# too must be declared and shaped as declared.
DOWN_CHECKS: list[CheckFunction] = [status_code_conformance, content_type_conformance, response_schema_conformance]
UNREACHABLE = {"redis": "redis://127.0.0.1:1/0", "clickhouse": "clickhouse://default@127.0.0.1:1/x"}


@pytest.fixture(scope="module", params=sorted(UNREACHABLE))
def api_without_a_store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Served]:
    """An API with admin and read tokens whose Redis or ClickHouse does not answer."""
    down = str(request.param)
    settings = Settings(
        redis_url=SecretStr(UNREACHABLE["redis"] if down == "redis" else redis_url),
        redis_prefix=f"yqtest-fuzz-{uuid.uuid4().hex[:10]}",
        clickhouse_url=SecretStr(UNREACHABLE["clickhouse"]),
        api_tokens=SecretStr(TOKENS),
    )
    server = ApiServer(settings, "127.0.0.1", 0, heartbeat_s=0.5)
    server.start()
    api = Served(server, httpx.Client(base_url=server.url, timeout=20), settings)
    try:
        yield api
    finally:
        api.client.close()
        server.stop()
        delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), settings.redis_prefix)


@schema.parametrize()
@fuzzing(MAX_EXAMPLES // 5)
def test_every_operation_answers_as_described_without_a_store(case: GeneratedCase, api_without_a_store: Served) -> None:
    response = case.call_and_validate(base_url=api_without_a_store.url, headers=ADMIN, checks=DOWN_CHECKS)
    down = (
        "redis" if api_without_a_store.settings.redis_url.get_secret_value() == UNREACHABLE["redis"] else "clickhouse"
    )
    ANSWERED[(f"api, {down} down", case.operation.label, response.status_code)] += 1


# The ingest endpoint (pipeline/ingest/http.py), as ``yuqing ingest --http`` serves it.
INGEST_TOKEN = "ingest-token-0123456789abcdef"


class _DescriptionOnly:
    """All that ``make_app`` reads of an Ingestor: enough to build the description without a broker."""

    settings = Settings()


INGEST_DESCRIPTION = make_app(cast(Ingestor, _DescriptionOnly())).openapi()
# An NDJSON body is generated as a string: sent as its UTF-8 bytes, as text/plain is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
ingest_schema = schemathesis.openapi.from_dict(INGEST_DESCRIPTION)


@pytest.fixture(params=["open", "guarded"])
def ingest_app(request: pytest.FixtureRequest, settings: Settings) -> Iterator[FastAPI]:
    """The ingest app over this test's topics: open (no tokens), or guarded by ``INGEST_TOKEN``."""
    ensure_topics(settings)
    tokens = INGEST_TOKEN if request.param == "guarded" else ""
    ingestor = Ingestor(settings.model_copy(update={"ingest_tokens": SecretStr(tokens)}))
    try:
        yield make_app(ingestor)
    finally:
        ingestor.close()


def test_the_fuzzed_ingest_description_is_the_served_one(ingest_app: FastAPI) -> None:
    assert ingest_app.openapi() == INGEST_DESCRIPTION


@ingest_schema.parametrize()
@fuzzing(MAX_EXAMPLES)
def test_every_ingest_operation_answers_as_described(case: GeneratedCase, ingest_app: FastAPI) -> None:
    response = case.call_and_validate(app=ingest_app, checks=CHECKS)
    guarded = bool(ingest_app.state.tokens)
    ANSWERED[("ingest, guarded" if guarded else "ingest, open", case.operation.label, response.status_code)] += 1


def test_stored_posts_answer_as_described(ingest_app: FastAPI) -> None:
    """Generated objects are nearly never valid posts: a valid one, and it again, are sent here."""
    post: dict[str, Any] = {
        "id": "f1",
        "platform": "weibo",
        "author_id": "u1",
        "text": "质量很好",
        "event_time": now_minute().isoformat(),
    }
    token = bearer(INGEST_TOKEN) if ingest_app.state.tokens else {}
    operation = ingest_schema["/posts"]["POST"]
    for duplicates in ([], [0]):
        case = operation.Case(body=post, media_type="application/json")
        response = case.call_and_validate(app=ingest_app, headers=token, checks=CHECKS)
        assert response.status_code == 200 and response.json()["duplicates"] == duplicates, response.text
