"""Fixtures and record builders the API tests share (this module holds no tests itself).

Import the fixtures by their function names (``api_fixture``, ``serve_fixture``,
``api_settings_fixture``); pytest knows them as ``api``, ``serve`` and ``api_settings``. Each API
test runs a real ``ApiServer`` (uvicorn in a thread, on a free port) against the machine's Redis
under a prefix of its own; tests of ClickHouse endpoints also take ``clickhouse_url``, which runs
them on the 18.16 server and on chDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from pydantic import SecretStr

from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.alerts import AlertStore
from pipeline.stores.redis.live import RedisSink, connect, delete_prefix
from schemas.records import Alert, Engagement, Post, ScoredPost, Sentiment, SentimentProbabilities

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TOKENS = f"{READ_TOKEN}:read,{ADMIN_TOKEN}:admin"


def now_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def scored(
    post_id: str,
    sentiment: Sentiment = "neutral",
    subjects: tuple[str, ...] = ("云帆",),
    *,
    at: datetime | None = None,
    platform: str = "weibo",
    text: str | None = None,
    terms: tuple[str, ...] = (),
    cluster_id: str | None = None,
    duplicate: bool = False,
    bot: bool = False,
    likes: int = 0,
) -> ScoredPost:
    """A scored post as a worker would write it; ``at`` defaults to a few seconds ago."""
    moment = at or datetime.now(UTC) - timedelta(seconds=1)
    post = Post(
        id=post_id,
        platform=platform,
        author_id=f"a-{post_id}",
        text=text or f"post {post_id} 关于 {'、'.join(subjects)}",
        event_time=moment,
        engagement=Engagement(likes=likes),
    )
    p_negative = 0.9 if sentiment == "negative" else 0.05
    return ScoredPost(
        post=post,
        sentiment=sentiment,
        probabilities=SentimentProbabilities(negative=p_negative, neutral=0.05, positive=1 - p_negative - 0.05),
        subjects=subjects,
        monitored=True,
        lang="zh",
        terms=terms,
        cluster_id=cluster_id or post_id,
        duplicate=duplicate,
        suspected_bot=bot,
        noise_reasons=("flood",) if bot else (),
        model_id="test",
        model_version="1",
        scored_at=max(moment, datetime.now(UTC)),
        processing_ms=1.0,
    )


def write_live(settings: Settings, posts: list[ScoredPost]) -> None:
    sink = RedisSink(settings)
    sink.add(posts)
    sink.flush()
    sink.close()


def write_history(url: str, posts: list[ScoredPost]) -> None:
    with ClickHouseSink.from_url(url) as sink:
        sink.add(posts)
        sink.flush()


def make_alert(alert_id: str, subject: str = "云帆", *, state: str = "opened", minutes_ago: int = 3) -> Alert:
    started = now_minute() - timedelta(minutes=minutes_ago)
    return Alert.model_validate(
        {
            "id": alert_id,
            "subject": subject,
            "kind": "negative_surge",
            "state": state,
            "severity": "critical",
            "started_at": started,
            "updated_at": started + timedelta(minutes=minutes_ago - 1, seconds=30),
            # The shape the alert service writes (pipeline/alerting/service.py).
            "evidence": {
                "score": 6.2,
                "observed": 42,
                "expected": 3.5,
                "ratio": 12.0,
                "firing": True,
                "counts": [
                    {"minute": (started + timedelta(minutes=i)).isoformat(), "total": 10 + 9 * i, "negative": 2 + 8 * i}
                    for i in range(minutes_ago)
                ],
                "top_posts": [{"post_id": "ev-1", "text": "云帆手机电池爆炸了", "platform": "weibo", "engagement": 99}],
                "hot_words": ["电池", "爆炸"],
                "emerging_words": ["爆炸"],
                "started_at": started.isoformat(),
            },
        }
    )


def save_alert(settings: Settings, alert: Alert) -> None:
    client = connect(settings)
    AlertStore(client, settings.redis_prefix).save(alert)
    client.close()


@dataclass
class Served:
    server: ApiServer
    client: httpx.Client
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(name="api_settings")
def api_settings_fixture(redis_url: str, test_id: str, chdb_folder: str) -> Iterator[Settings]:
    """Settings of one API test: its own Redis prefix; ClickHouse is only opened if a test asks."""
    made = Settings(
        redis_url=SecretStr(redis_url),
        redis_prefix=f"yqtest-api-{test_id}",
        clickhouse_url=SecretStr(f"chdb://{chdb_folder}?database=yq_api_{test_id}"),
        dashboard_url="http://dashboard.test",
    )
    yield made
    delete_prefix(redis.Redis.from_url(redis_url, decode_responses=True), made.redis_prefix)


ServeFactory = Callable[..., Served]


@pytest.fixture(name="serve")
def serve_fixture(api_settings: Settings) -> Iterator[ServeFactory]:
    """Start API servers: ``serve(tokens=TOKENS, cors="...", clickhouse_url=...)``; all stopped after."""
    running: list[Served] = []

    def start(
        *, tokens: str = "", cors: str = "", clickhouse_url: str | None = None, heartbeat_s: float = 0.5
    ) -> Served:
        update: dict[str, object] = {"api_tokens": SecretStr(tokens), "api_cors_origins": cors}
        if clickhouse_url is not None:
            update["clickhouse_url"] = SecretStr(clickhouse_url)
        settings = api_settings.model_copy(update=update)
        server = ApiServer(settings, "127.0.0.1", 0, heartbeat_s=heartbeat_s)
        server.start()
        served = Served(server, httpx.Client(base_url=server.url, timeout=20), settings)
        running.append(served)
        return served

    yield start
    for served in running:
        served.client.close()
        served.server.stop()


@pytest.fixture(name="api")
def api_fixture(serve: ServeFactory) -> Served:
    """An API in open mode (no tokens: read without one, no admin)."""
    return serve()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, fragment: str = "") -> None:
    """A clear 4xx: the status, a JSON body ``{"error": reason}``, and the reason mentions ``fragment``."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert fragment.lower() in body["error"].lower(), body
