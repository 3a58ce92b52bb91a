from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.stores.query import QueryError, parse_window
from pipeline.stores.redis.keys import RedisKeys, bucket_field, split_field
from pipeline.stores.sink import count_buckets
from schemas.export import JSON_DIR, RECORDS, render
from schemas.records import Post, ScoredPost, SentimentProbabilities
from workers.stages import subjects_of


@pytest.mark.parametrize("name", list(RECORDS))
def test_committed_json_schemas_match_the_records(name: str) -> None:
    assert (JSON_DIR / f"{name}.json").read_text(encoding="utf-8") == render(name), "run: yuqing schemas"


def _scored(post_id: str, hashtags: tuple[str, ...], second: int = 0) -> ScoredPost:
    post = Post(
        id=post_id,
        platform="weibo",
        author_id="u",
        text="t",
        event_time=datetime(2026, 11, 28, 12, 0, second, tzinfo=UTC),
        hashtags=hashtags,
    )
    return ScoredPost(
        post=post,
        sentiment="negative",
        probabilities=SentimentProbabilities(negative=1, neutral=0, positive=0),
        subjects=subjects_of(post),
        cluster_id=post.id,
        model_id="m",
        model_version="1",
        scored_at=post.event_time,
        processing_ms=1,
    )


def test_subjects_are_hashtags_or_all() -> None:
    assert _scored("a", ("华为", "华为", "苹果")).subjects == ("华为", "苹果")
    assert _scored("b", ()).subjects == ("_all",)


def test_bucket_counts_count_each_post_id_once() -> None:
    counts = count_buckets([_scored("a", ("x", "y")), _scored("a", ("x", "y")), _scored("b", ("x",), 59)])
    assert sorted((k.subject, v) for k, v in counts.items()) == [("x", 2), ("y", 1)]


def test_redis_key_layout() -> None:
    keys = RedisKeys("yq")
    assert keys.minute(datetime(2026, 11, 28, 9, 5, tzinfo=UTC)) == "yq:min:202611280905"
    assert split_field(bucket_field("华为", "weibo", "negative")) == ("华为", "weibo", "negative")


@pytest.mark.parametrize(("text", "minutes"), [("5m", 5), ("1h", 60), ("24h", 1440), ("1d", 1440)])
def test_windows(text: str, minutes: int) -> None:
    assert parse_window(text) == minutes


@pytest.mark.parametrize("text", ["0m", "25h", "5", "five minutes", "-5m", "5m; DROP"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(QueryError):
        parse_window(text)
