"""Scored posts as a worker writes them, and writing them through the real sinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.settings import Settings
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.redis.live import RedisSink
from schemas.records import Engagement, Post, ScoredPost, Sentiment, SentimentProbabilities


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
