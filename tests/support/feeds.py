"""Synthetic posts produced to posts.raw as an outside producer would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from schemas.records import Post

N = 600


def produce(settings: Settings, n: int = N) -> list[Post]:
    """n synthetic posts, event times spread over the last few minutes, produced to posts.raw."""
    ensure_topics(settings)
    feed = SyntheticFeed("crisis", rate=n / 240, seed=7, start=datetime.now(UTC) - timedelta(minutes=4))
    posts = feed.take(n)
    ingestor = Ingestor(settings)
    for post in posts:
        ingestor.submit(post.model_dump(mode="json"))
    assert ingestor.flush().accepted == n
    ingestor.close()
    return posts
