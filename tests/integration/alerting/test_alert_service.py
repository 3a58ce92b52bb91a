"""AlertService on the real Redis: a surge in the live counts opens one alert with evidence, which
resolves when the surge ends; each event is in the store, the stream and the pub/sub channel."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import redis

from pipeline.alerting.service import AlertService
from pipeline.settings import Settings
from pipeline.stores.redis.alerts import AlertNotFoundError, AlertStore
from pipeline.stores.redis.live import RedisLive, RedisSink, connect
from pipeline.stores.redis.subjects import SubjectStore, subject_from_options
from schemas.records import Engagement, Post, ScoredPost, Sentiment, SentimentProbabilities

pytestmark = pytest.mark.integration
SUBJECT = "星河乳业"
START = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
PROBABILITIES = SentimentProbabilities(negative=0.9, neutral=0.05, positive=0.05)


def post(n: int, at: datetime, sentiment: Sentiment, likes: int = 0, *, copy: bool = False) -> ScoredPost:
    text = f"{SUBJECT} 第{n}条：牛奶变质 退货" if sentiment == "negative" else f"{SUBJECT} 第{n}条 日常"
    return ScoredPost(
        post=Post(
            id=f"a{n}",
            platform="weibo",
            author_id=f"u{n}",
            text=text,
            event_time=at,
            engagement=Engagement(likes=likes),
        ),
        sentiment=sentiment,
        probabilities=PROBABILITIES,
        subjects=(SUBJECT,),
        monitored=True,
        terms=("牛奶", "变质") if sentiment == "negative" else ("日常",),
        cluster_id="flood" if copy else f"a{n}",
        duplicate=copy,
        model_id="m",
        model_version="1",
        scored_at=at,
        processing_ms=1,
    )


def minute_posts(minute: int, per_minute: int, negatives: int, rng: random.Random, first: int) -> list[ScoredPost]:
    at = START + timedelta(minutes=minute)
    return [
        post(first + i, at + timedelta(seconds=rng.uniform(0, 59)), "negative" if i < negatives else "neutral", i)
        for i in range(per_minute)
    ]


def test_a_surge_opens_one_alert_with_evidence_then_resolves(settings: Settings) -> None:
    rng = random.Random(3)
    client = connect(settings)
    SubjectStore(client, settings.redis_prefix).put(subject_from_options(SUBJECT, [SUBJECT]))
    sink, live, store = RedisSink(settings), RedisLive(settings), AlertStore(client, settings.redis_prefix)
    counter = 0
    plan = {m: (40, rng.choice((4, 5, 6, 7))) for m in range(60)}  # baseline: 40 posts/min, ~14% negative
    plan.update({m: (70, 40) for m in range(60, 66)})  # a surge: 40 negatives a minute for 6 minutes
    plan.update({m: (40, 5) for m in range(66, 80)})
    service = AlertService(live, SubjectStore(client, settings.redis_prefix), store, lag_s=0, warmup_minutes=60)
    pubsub = redis.Redis.from_url(settings.redis_url.get_secret_value()).pubsub()
    pubsub.subscribe(f"{settings.redis_prefix}:alerts:live")

    # The first 60 minutes are history when the service starts; then it follows the clock every 10 s.
    for minute in range(60):
        sink.add(minute_posts(minute, *plan[minute], rng, counter))
        counter += plan[minute][0]
    sink.add([post(99_000 + i, START + timedelta(minutes=62, seconds=5), "negative", copy=True) for i in range(200)])
    sink.flush()
    events = []
    for minute in range(60, 80):
        batch = minute_posts(minute, *plan[minute], rng, counter)
        counter += len(batch)
        for second in range(0, 60, 10):
            now = START + timedelta(minutes=minute, seconds=second + 9)
            sink.add([p for p in batch if p.post.event_time <= now])
            sink.flush()
            events += [(now, alert) for alert in service.tick(now)]

    surges = [(t, a) for t, a in events if a.kind == "negative_surge"]
    states = [a.state for _, a in surges]
    assert states[0] == "opened" and states[-1] == "resolved" and states.count("opened") == 1
    opened_at, opened = surges[0]
    assert opened_at - (START + timedelta(minutes=60)) <= timedelta(seconds=60)  # seen within the minute
    assert not [a for _, a in events if a.kind == "volume_burst"]  # the 200 copies count once
    evidence = opened.evidence
    assert evidence["observed"] > 2 * evidence["expected"]  # type: ignore[operator]
    assert evidence["started_at"] == (START + timedelta(minutes=60)).isoformat()
    top = evidence["top_posts"]
    assert isinstance(top, list) and len(top) == 5 and all("变质" in p["text"] for p in top)
    assert [p["engagement"] for p in top] == sorted((p["engagement"] for p in top), reverse=True)
    assert "变质" in evidence["hot_words"]  # type: ignore[operator]
    assert f"?alert={opened.id}" in str(evidence["dashboard_url"])

    stored = store.require(opened.id)
    assert stored.state == "resolved" and store.find(SUBJECT, state="resolved")[0].id == opened.id
    assert [a.state for a in store.events() if a.id == opened.id] == states
    messages = [m for m in iter(lambda: pubsub.get_message(timeout=1), None) if m["type"] == "message"]
    assert [json.loads(m["data"])["state"] for m in messages if json.loads(m["data"])["id"] == opened.id] == states
    acked = store.acknowledge(opened.id, "oncall@example.com")
    assert acked.acknowledged_by == "oncall@example.com" and store.require(opened.id).acknowledged_at is not None
    with pytest.raises(AlertNotFoundError):
        store.acknowledge("nope", "x")


@pytest.mark.parametrize(
    "takeover_minute",
    [60.5, 62.5, 75.0],
    ids=["in-the-opening-minute", "mid-incident", "after-it-ended"],
)
def test_a_new_leader_neither_reopens_nor_forgets_its_predecessors_alert(
    settings: Settings, takeover_minute: float
) -> None:
    """Leader A opens the alert and dies; B starts later, from Redis alone. Between them, receivers get
    "opened" once and "resolved" once, with the same id, wherever in the incident the handover falls."""
    rng = random.Random(4)
    client = connect(settings)
    SubjectStore(client, settings.redis_prefix).put(subject_from_options(SUBJECT, [SUBJECT]))
    sink, live, store = RedisSink(settings), RedisLive(settings), AlertStore(client, settings.redis_prefix)
    plan = {m: (40, rng.choice((4, 5, 6, 7))) for m in range(60)}
    plan.update({m: (70, 40) for m in range(60, 64)})
    plan.update({m: (40, 5) for m in range(64, 85)})
    pending: list[ScoredPost] = []
    for minute, (per_minute, negatives) in plan.items():
        pending += minute_posts(minute, per_minute, negatives, rng, len(pending))

    def arrive_until(now: datetime) -> None:
        nonlocal pending
        sink.add([p for p in pending if p.post.event_time <= now])
        sink.flush()
        pending = [p for p in pending if p.post.event_time > now]

    def lead(start: float, end: float) -> list[tuple[str, str]]:
        """A new leader ticking every 10 s from ``start`` to ``end`` (minutes after START)."""
        service = AlertService(live, SubjectStore(client, settings.redis_prefix), store, lag_s=0, warmup_minutes=60)
        seen = []
        for seconds in range(int(start * 60), int(end * 60), 10):
            now = START + timedelta(seconds=seconds + 9)
            arrive_until(now)
            seen += [(a.id, a.state) for a in service.tick(now) if a.kind == "negative_surge"]
        return seen

    arrive_until(START + timedelta(minutes=60) - timedelta(microseconds=1))
    announced = lead(60, 60.5)
    assert [state for _id, state in announced] == ["opened"]  # seen within the surge's first minute
    arrive_until(START + timedelta(minutes=takeover_minute))  # nobody leads, but posts still arrive
    announced += lead(takeover_minute, 85)

    alert_id = announced[0][0]
    opened_and_resolved = [event for event in announced if event[1] != "updated"]  # updates may come between
    assert opened_and_resolved == [(alert_id, "opened"), (alert_id, "resolved")]
    assert [a.state for a in store.events() if a.state != "updated"] == ["opened", "resolved"]
