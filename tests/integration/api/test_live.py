"""The live endpoints against the real Redis: aggregates, series, top subjects, hot words, health."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from pipeline.api.app import DASHBOARD_DIST
from pipeline.api.server import ApiServer
from pipeline.settings import Settings
from tests.support.api import Served, assert_problem
from tests.support.records import now_minute, scored, write_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _crisis(api: Served) -> None:
    """云帆: 4 negative (one a duplicate, one a bot) and 2 positive now; 星河: 3 neutral 20 minutes ago."""
    posts = [
        scored("n1", "negative", ("云帆",), terms=("电池", "爆炸")),
        scored("n2", "negative", ("云帆",), platform="douyin", terms=("电池",)),
        scored("n3", "negative", ("云帆",), duplicate=True, cluster_id="n1", terms=("电池",)),
        scored("n4", "negative", ("云帆",), bot=True, terms=("电池",)),
        scored("p1", "positive", ("云帆",), platform="douyin"),
        scored("p2", "positive", ("云帆", "星河")),
    ]
    posts += [scored(f"s{i}", "neutral", ("星河",), at=now_minute() - timedelta(minutes=20)) for i in range(3)]
    write_live(api.settings, posts)


def test_health_needs_no_token_and_openapi_lists_every_endpoint(api: Served) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "redis": True}
    spec = api.client.get("/api/v1/openapi.json").json()
    paths = set(spec["paths"])
    expected = {
        "/healthz", "/api/v1/session", "/api/v1/aggregates", "/api/v1/series", "/api/v1/top-subjects",
        "/api/v1/hot-words", "/api/v1/history/series", "/api/v1/history/hot-words", "/api/v1/posts",
        "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/subjects", "/api/v1/subjects/{name}", "/api/v1/stream",
    }  # fmt: skip
    assert expected <= paths, expected - paths
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    window = next(p for p in spec["paths"]["/api/v1/posts"]["get"]["parameters"] if p["name"] == "limit")
    assert window["schema"]["maximum"] == 500
    assert api.client.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


def test_dashboard_is_served_at_the_root(api: Served) -> None:
    response = api.client.get("/")
    if not (DASHBOARD_DIST / "index.html").is_file():
        assert response.status_code == 503 and "make dashboard" in response.text
        pytest.skip("the dashboard is not built (make dashboard)")
    assert response.status_code == 200 and 'id="chart-volume"' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    asset = next(p for p in (DASHBOARD_DIST / "assets").iterdir() if p.suffix == ".js")
    assert api.client.get(f"/assets/{asset.name}").status_code == 200
    assert api.client.get("/assets/nothing.js").status_code == 404


def test_aggregates_by_subject_platform_and_sentiment(api: Served) -> None:
    _crisis(api)
    body = api.client.get("/api/v1/aggregates", params={"window": "5m"}).json()
    assert body["window"] == "5m" and body["minutes"] == 5
    rows = {row["subject"]: row for row in body["subjects"]}
    assert body["subjects"][0]["subject"] == "*"
    assert set(rows) == {"*", "云帆", "星河"}  # 星河's neutral posts are 20 minutes old
    yunfan = rows["云帆"]
    assert yunfan["raw"]["total"] == 6 and yunfan["raw"]["sentiments"]["negative"] == 4
    assert yunfan["raw"]["negative_share"] == round(4 / 6, 4)
    # The duplicate and the bot do not count in the deduplicated numbers.
    assert yunfan["deduplicated"]["total"] == 4 and yunfan["deduplicated"]["negative_share"] == 0.5
    platforms = {p["platform"]: p for p in yunfan["platforms"]}
    assert platforms["douyin"]["raw"]["sentiments"] == {"negative": 1, "neutral": 0, "positive": 1, "unknown": 0}
    assert platforms["weibo"]["raw"]["total"] == 4
    assert rows["*"]["raw"]["total"] == 6  # p2 counts once although it has two subjects

    wide = api.client.get("/api/v1/aggregates", params={"window": "1h"}).json()
    assert {r["subject"]: r["raw"]["total"] for r in wide["subjects"]}["星河"] == 4

    one = api.client.get("/api/v1/aggregates", params={"window": "24h", "subject": "云帆", "platform": "douyin"})
    (row,) = one.json()["subjects"]
    assert (
        row["subject"] == "云帆"
        and row["raw"]["total"] == 2
        and [p["platform"] for p in row["platforms"]] == ["douyin"]
    )


def test_a_known_subject_without_posts_in_the_window_gives_zeros(api: Served) -> None:
    write_live(api.settings, [scored("old", "negative", ("旧闻",), at=now_minute() - timedelta(minutes=30))])
    (old,) = api.client.get("/api/v1/aggregates", params={"window": "5m", "subject": "旧闻"}).json()["subjects"]
    zero = {"negative": 0, "neutral": 0, "positive": 0, "unknown": 0}
    assert old == {
        "subject": "旧闻",
        "raw": {"total": 0, "sentiments": zero, "negative_share": 0.0},
        "deduplicated": {"total": 0, "sentiments": zero, "negative_share": 0.0},
        "platforms": [],
    }


def test_series_has_one_point_per_minute_oldest_first(api: Served) -> None:
    _crisis(api)
    body = api.client.get("/api/v1/series", params={"window": "30m", "subject": "星河"}).json()
    points = body["points"]
    assert len(points) == 30 and points == sorted(points, key=lambda p: p["minute"])
    by_total = [p for p in points if p["raw"]["total"]]
    assert [p["raw"]["total"] for p in by_total] == [3, 1]
    assert by_total[0]["raw"]["sentiments"]["neutral"] == 3
    everything = api.client.get("/api/v1/series", params={"window": "5m"}).json()
    assert everything["subject"] == "*"
    last = everything["points"][-1]
    assert sum(p["raw"]["total"] for p in everything["points"]) == 6
    assert last["deduplicated"]["total"] <= last["raw"]["total"]


def test_top_subjects_and_hot_words(api: Served) -> None:
    _crisis(api)
    top = api.client.get("/api/v1/top-subjects", params={"window": "1h", "n": 2}).json()
    assert top["subjects"][0] == {"subject": "云帆", "posts": 6} and len(top["subjects"]) == 2
    words = api.client.get("/api/v1/hot-words", params={"window": "5m", "subject": "云帆"}).json()
    # Hot words count deduplicated posts only: n3 (a duplicate) and n4 (a bot) are left out.
    assert {w["term"]: w["posts"] for w in words["words"]} == {"电池": 2, "爆炸": 1}
    assert words["emerging"] == [] or all("term" in e for e in words["emerging"])


def test_subjects_known_only_by_their_recent_posts_are_accepted(api: Served) -> None:
    write_live(api.settings, [scored("h1", "negative", ("#某品牌#",))])
    assert api.client.get("/api/v1/series", params={"subject": "#某品牌#", "window": "5m"}).status_code == 200
    assert_problem(api.client.get("/api/v1/series", params={"subject": "没有的主题"}), 404, "unknown subject")


def test_unreachable_stores_are_503_not_500(api_settings: Settings) -> None:
    no_redis = api_settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    no_clickhouse = api_settings.model_copy(update={"clickhouse_url": SecretStr("clickhouse://default@127.0.0.1:1/x")})
    for settings, path, fragment in (
        (no_redis, "/api/v1/aggregates", "Redis"),
        (no_redis, "/api/v1/alerts", "Redis"),
        (no_clickhouse, "/api/v1/posts", "ClickHouse"),
    ):
        server = ApiServer(settings, "127.0.0.1", 0)
        server.start()
        try:
            assert_problem(httpx.get(f"{server.url}{path}", timeout=30), 503, fragment)
            if settings is no_redis:
                assert httpx.get(f"{server.url}/healthz", timeout=30).json() == {"status": "unhealthy", "redis": False}
        finally:
            server.stop()
