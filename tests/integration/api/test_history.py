"""The ClickHouse endpoints, on the 18.16 server and on chDB: the posts behind a number (paged, with
cluster and bot flags), minute history and hot words over a range."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.api import Served, ServeFactory, assert_problem
from tests.support.records import now_minute, scored, write_history, write_live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def history_api(serve: ServeFactory, clickhouse_url: str) -> Served:
    """An API whose history store holds 25 posts of 云帆 two minutes ago and 3 of 星河 now."""
    api = serve(clickhouse_url=clickhouse_url)
    minute = now_minute() - timedelta(minutes=2)
    posts = [
        scored(
            f"y{i:02d}",
            "negative" if i % 5 else "positive",
            ("云帆",),
            at=minute + timedelta(seconds=2 * i),
            platform="douyin" if i % 2 else "weibo",
            terms=("电池",) if i % 5 else ("好评",),
            cluster_id="y01" if i in (11, 12) else None,
            duplicate=i in (11, 12),
            bot=i == 13,
        )
        for i in range(25)
    ]
    posts += [scored(f"x{i}", "neutral", ("星河",), terms=("牛奶",)) for i in range(3)]
    write_history(clickhouse_url, posts)
    write_live(api.settings, posts)  # so the subjects are known (they had posts in the last 24 h)
    return api


def test_posts_behind_a_chart_point_paged_with_noise_flags(history_api: Served) -> None:
    minute = (now_minute() - timedelta(minutes=2)).isoformat()
    client = history_api.client
    first = client.get("/api/v1/posts", params={"subject": "云帆", "minute": minute, "limit": 10}).json()
    assert first["limit"] == 10 and first["offset"] == 0 and first["next_offset"] == 10
    assert len(first["posts"]) == 10 and first["posts"][0]["post_id"] == "y24"  # newest first
    seen = [p["post_id"] for p in first["posts"]]
    offset = first["next_offset"]
    while offset is not None:
        page = client.get("/api/v1/posts", params={"subject": "云帆", "minute": minute, "limit": 10, "offset": offset})
        body = page.json()
        seen += [p["post_id"] for p in body["posts"]]
        offset = body["next_offset"]
    assert sorted(seen) == [f"y{i:02d}" for i in range(25)] and len(seen) == 25

    everything = client.get("/api/v1/posts", params={"subject": "云帆", "minute": minute, "limit": 500}).json()
    flags = {p["post_id"]: p for p in everything["posts"]}
    assert flags["y11"]["is_duplicate"] and flags["y11"]["cluster_id"] == "y01" and not flags["y11"]["suspected_bot"]
    assert flags["y13"]["suspected_bot"] and flags["y13"]["noise_reasons"] == ["flood"]
    assert not flags["y10"]["is_duplicate"] and flags["y10"]["cluster_id"] == "y10"

    kept = client.get(
        "/api/v1/posts", params={"subject": "云帆", "minute": minute, "deduplicated": "true", "limit": 500}
    )
    assert {p["post_id"] for p in kept.json()["posts"]}.isdisjoint({"y11", "y12", "y13"})
    negative_douyin = client.get(
        "/api/v1/posts", params={"subject": "云帆", "sentiment": "negative", "platform": "douyin", "limit": 500}
    ).json()["posts"]
    assert negative_douyin and all(p["sentiment"] == "negative" and p["platform"] == "douyin" for p in negative_douyin)
    assert len(negative_douyin) == sum(1 for i in range(25) if i % 5 and i % 2)

    every = client.get("/api/v1/posts", params={"limit": 500}).json()  # subject * is every post
    assert len(every["posts"]) == 28 and every["subject"] == "*"
    empty = client.get("/api/v1/posts", params={"subject": "星河", "minute": minute}).json()
    assert empty["posts"] == [] and empty["next_offset"] is None


def test_history_series_and_hot_words(history_api: Served) -> None:
    client = history_api.client
    since = (now_minute() - timedelta(minutes=10)).isoformat()
    rows = client.get("/api/v1/history/series", params={"since": since, "subject": "云帆"}).json()["rows"]
    assert sum(r["count"] for r in rows) == 25 and {r["subject"] for r in rows} == {"云帆"}
    assert sum(r["count"] for r in rows if r["sentiment"] == "negative") == 20
    kept = client.get("/api/v1/history/series", params={"since": since, "subject": "云帆", "deduplicated": "true"})
    assert sum(r["count"] for r in kept.json()["rows"]) == 22
    both = client.get("/api/v1/history/series", params={"since": since}).json()
    assert both["subject"] is None and {r["subject"] for r in both["rows"]} == {"云帆", "星河"}

    words = client.get("/api/v1/history/hot-words", params={"since": since, "subject": "云帆"}).json()["words"]
    assert words[0] == {"term": "电池", "posts": 17}  # 20 negative, less two duplicates and a bot
    all_words = {w["term"] for w in client.get("/api/v1/history/hot-words", params={"since": since}).json()["words"]}
    assert {"电池", "牛奶", "好评"} <= all_words


def test_history_ranges_are_checked(history_api: Served) -> None:
    client = history_api.client
    until = now_minute().isoformat()
    assert_problem(client.get("/api/v1/posts", params={"since": until, "until": until}), 400, "before until")
    assert_problem(client.get("/api/v1/posts", params={"since": "2024-01-01", "until": "2024-02-01"}), 400, "7 days")
    assert_problem(client.get("/api/v1/posts", params={"minute": until, "since": until}), 400, "either minute")
    assert_problem(client.get("/api/v1/history/series", params={"since": "yesterday"}), 400, "ISO 8601")
    assert_problem(client.get("/api/v1/posts", params={"minute": "1970-01-01T00:00"}), 400, "2000-2100")
    naive = client.get("/api/v1/posts", params={"since": "2026-01-01T00:00", "until": "2026-01-02T00:00"})
    assert naive.status_code == 200 and naive.json()["since"].startswith("2026-01-01T00:00:00")


def test_history_reads_the_serving_version_unless_asked_for_another(history_api: Served, clickhouse_url: str) -> None:
    """A re-score of the same posts by model version "2" sits beside the serving version "1"."""
    minute = now_minute() - timedelta(minutes=2)
    rescored = [
        scored(f"y{i:02d}", "positive", ("云帆",), at=minute + timedelta(seconds=2 * i), terms=("好评",))
        for i in range(25)
    ]
    write_history(clickhouse_url, [p.model_copy(update={"model_version": "2"}) for p in rescored])
    client = history_api.client
    since = (now_minute() - timedelta(minutes=10)).isoformat()

    def sentiments(**params: str) -> dict[str, int]:
        body = client.get("/api/v1/history/series", params={"since": since, "subject": "云帆", **params}).json()
        counts: dict[str, int] = {}
        for row in body["rows"]:
            counts[row["sentiment"]] = counts.get(row["sentiment"], 0) + row["count"]
        return {"version": body["model_version"], **counts}

    assert sentiments() == {"version": "1", "negative": 20, "positive": 5}
    assert sentiments(model_version="1") == sentiments()
    assert sentiments(model_version="2") == {"version": "2", "positive": 25}
    words = client.get(
        "/api/v1/history/hot-words", params={"since": since, "subject": "云帆", "model_version": "2"}
    ).json()
    assert [(w["term"], w["posts"]) for w in words["words"]] == [("好评", 25)]
    posts = client.get("/api/v1/posts", params={"subject": "云帆", "model_version": "2", "limit": 500}).json()
    assert len(posts["posts"]) == 25 and {p["sentiment"] for p in posts["posts"]} == {"positive"}
    assert_problem(client.get("/api/v1/posts", params={"model_version": "bad version!"}), 400, "model_version")
