from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
import redis

from pipeline.settings import Settings
from pipeline.stores.redis.live import RedisLive, RedisSink, delete_prefix, evidence_member
from pipeline.stores.sink import SinkError, minute_of
from schemas.records import Engagement, Post, ScoredPost, Sentiment, SentimentProbabilities

pytestmark = pytest.mark.integration
ScoredFactory = Callable[..., ScoredPost]


@pytest.fixture
def now() -> datetime:
    """One instant per test: live windows are relative to the real now, and a suite runs for minutes."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def scored(now: datetime) -> ScoredFactory:
    """``scored(n, sentiment, subjects, minutes_ago=0)``: a scored post stamped at this test's ``now``."""

    def make(n: int, sentiment: Sentiment, subjects: tuple[str, ...], minutes_ago: int = 0) -> ScoredPost:
        return _scored(now, n, sentiment, subjects, minutes_ago)

    return make


def _scored(now: datetime, n: int, sentiment: Sentiment, subjects: tuple[str, ...], minutes_ago: int) -> ScoredPost:
    post = Post(
        id=f"p{n}",
        platform="weibo" if n % 2 else "douyin",
        author_id="u",
        text="t",
        event_time=now - timedelta(minutes=minutes_ago),
    )
    probs = SentimentProbabilities(negative=0.8, neutral=0.1, positive=0.1)
    return ScoredPost(
        post=post,
        sentiment=sentiment,
        probabilities=probs,
        subjects=subjects,
        cluster_id=post.id,
        model_id="m",
        model_version="1",
        scored_at=now,
        processing_ms=1,
    )


def test_counts_windows_top_subjects_and_replays(settings: Settings, scored: ScoredFactory) -> None:
    posts = [scored(i, "negative", ("华为", "手机")) for i in range(6)]
    posts += [scored(100 + i, "positive", ("苹果",), minutes_ago=30) for i in range(4)]
    sink, live = RedisSink(settings), RedisLive(settings)
    pubsub = redis.Redis.from_url(settings.redis_url.get_secret_value()).pubsub()
    pubsub.subscribe(f"{settings.redis_prefix}:live")
    sink.add(posts)
    sink.flush()
    assert sink.counted_last_flush == 10

    assert live.total(5) == 6
    assert live.total(60) == 10
    counts = live.window_counts(60)
    assert sum(v for (s, _, sent), v in counts.items() if (s, sent) == ("华为", "negative")) == 6
    assert sum(v for (s, _, sent), v in counts.items() if (s, sent) == ("苹果", "positive")) == 4
    assert live.top_subjects(60, 2) == [("手机", 6), ("华为", 6)] or live.top_subjects(60, 2)[0][1] == 6

    sink.add(posts[:5])  # a replayed batch: nothing may change
    sink.flush()
    assert sink.counted_last_flush == 0
    assert live.total(60) == 10

    messages = [m for m in iter(lambda: pubsub.get_message(timeout=1), None) if m["type"] == "message"]
    assert json.loads(messages[0]["data"])["counted"] == 10


def test_failed_flush_keeps_its_buffer(settings: Settings, scored: ScoredFactory) -> None:
    down = settings.model_copy(update={"redis_url": type(settings.redis_url)("redis://127.0.0.1:1/0")})
    sink = RedisSink(down)
    sink.add([scored(1, "neutral", ("x",))])
    with pytest.raises(SinkError):
        sink.flush()
    good = RedisSink(settings)
    good.add([scored(1, "neutral", ("x",))])
    good.flush()
    assert RedisLive(settings).total(5) == 1


def noisy(
    scored: ScoredFactory, n: int, subjects: tuple[str, ...], terms: tuple[str, ...], *, duplicate: bool, bot: bool
) -> ScoredPost:
    base = scored(n, "negative", subjects)
    return base.model_copy(update={"terms": terms, "duplicate": duplicate, "suspected_bot": bot})


def test_deduplicated_counts_and_hot_words(settings: Settings, scored: ScoredFactory) -> None:
    posts = [noisy(scored, 1, ("乳业",), ("牛奶", "变质"), duplicate=False, bot=False)]
    posts += [noisy(scored, 2 + i, ("乳业",), ("牛奶", "退货"), duplicate=True, bot=False) for i in range(3)]
    posts += [noisy(scored, 10 + i, ("乳业",), ("抵制",), duplicate=False, bot=True) for i in range(4)]
    posts += [noisy(scored, 20, ("乳业", "食品"), ("牛奶", "召回"), duplicate=False, bot=False)]
    sink, live = RedisSink(settings), RedisLive(settings)
    sink.add(posts)
    sink.flush()
    sink.add(posts)  # a replay changes neither series
    sink.flush()

    assert live.total(5) == 9
    assert live.total(5, deduplicated=True) == 2
    raw = live.window_counts(5, "乳业")
    deduplicated = live.window_counts(5, "乳业", deduplicated=True)
    assert sum(raw.values()) == 9 and sum(deduplicated.values()) == 2
    # Hot words come from the deduplicated posts only: the copies' 退货 and the bots' 抵制 are absent.
    assert live.hot_words("乳业", 5) == [("牛奶", 2), ("变质", 1), ("召回", 1)]
    assert live.hot_words("食品", 5) == [("召回", 1), ("牛奶", 1)]
    assert live.hot_words("*", 5)[0] == ("牛奶", 2)
    minutes = live.hot_word_minutes("乳业", 3)
    assert len(minutes) == 3 and minutes[-1] == {"牛奶": 2, "变质": 1, "召回": 1}


def test_event_time_gate_and_evidence_posts(settings: Settings, scored: ScoredFactory, now: datetime) -> None:
    sink, live = RedisSink(settings), RedisLive(settings)
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    future = scored(1, "negative", ("乳业",)).model_copy(update={"scored_at": now - timedelta(hours=1)})
    late = scored(2, "negative", ("乳业",), minutes_ago=30)  # scored now, posted 30 minutes ago
    liked = []
    for i in range(14):
        base = noisy(scored, 10 + i, ("乳业",), (), duplicate=False, bot=False)
        liked.append(
            base.model_copy(update={"post": base.post.model_copy(update={"engagement": Engagement(likes=i * 10)})})
        )
    copy = noisy(scored, 50, ("乳业",), (), duplicate=True, bot=False)
    sink.add([future, late, *liked, copy])
    sink.flush()
    sink.add([future, late])  # replays count no reason twice
    sink.flush()
    assert client.hgetall(f"{settings.redis_prefix}:detection:dropped") == {"too_far_future": "1", "too_late": "1"}
    assert live.total(60) == 1 + 14 + 1  # the far-future post is in no live minute; the late one is
    assert live.watermark() == now  # the newest event time counted (the far-future one is not)
    stamp = now.strftime("%Y%m%d%H%M")
    kept = client.zrevrange(f"{settings.redis_prefix}:neg:{stamp}:乳业", 0, -1, withscores=True)
    assert len(kept) == 10  # the most engaged deduplicated negatives of the minute
    assert [int(score) for _member, score in kept] == [i * 10 for i in range(13, 3, -1)]
    assert json.loads(kept[0][0])["post_id"] == "p23" and all("p50" not in m for m, _ in kept)


def test_awkward_text_passes_through_the_flush_documents_exactly(
    settings: Settings, scored: ScoredFactory, now: datetime
) -> None:
    """Each post reaches the flush script as one JSON document: Chinese, quotes, backslashes, a newline
    and an emoji must come out of it unchanged, and a post without terms counts like one with many."""
    text = '舆情 "引号" \\反斜杠\\ 换行\n表情😀'
    subjects = ('华为"手机"', "C:\\路径\\", "表情😀", "多行\n主题")
    terms = (*(f'词{i}"\\😀' for i in range(40)), "换\n行", '"', "\\")

    def awkward(n: int, post_id: str, about: tuple[str, ...], words: tuple[str, ...], likes: int) -> ScoredPost:
        base = scored(n, "negative", about)
        post = base.post.model_copy(update={"id": post_id, "text": text, "engagement": Engagement(likes=likes)})
        return base.model_copy(update={"post": post, "terms": words, "cluster_id": post_id})

    bare = awkward(1, '帖子"1\\😀', subjects, (), likes=7)
    wordy = awkward(2, "帖子2", subjects[:2], terms, likes=3)
    sink, live = RedisSink(settings), RedisLive(settings)
    sink.add([bare, wordy])
    sink.flush()
    assert sink.counted_last_flush == 2
    sink.add([wordy, bare])  # a replay: the awkward ids must match their seen markers
    sink.flush()
    assert sink.counted_last_flush == 0

    per_subject: Counter[str] = Counter()
    for (subject, _platform, sentiment), count in live.window_counts(5, deduplicated=True).items():
        assert sentiment == "negative"
        per_subject[subject] += count
    assert per_subject == {"*": 2, subjects[0]: 2, subjects[1]: 2, subjects[2]: 1, subjects[3]: 1}
    assert live.total(5) == 2
    assert dict(live.top_subjects(5, 10)) == {subjects[0]: 2, subjects[1]: 2, subjects[2]: 1, subjects[3]: 1}
    assert dict(live.hot_words(subjects[0], 5, 100)) == dict.fromkeys(terms, 1)
    assert live.hot_words(subjects[2], 5) == []  # only the post without terms is about it

    # Evidence members are stored byte for byte as built, so their text round-trips exactly.
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    stamp = now.strftime("%Y%m%d%H%M")
    members = client.zrevrange(f"{settings.redis_prefix}:neg:{stamp}:{subjects[1]}", 0, -1)
    assert members == [evidence_member(bare), evidence_member(wordy)]
    evidence = live.negative_posts(subjects[0], [minute_of(now)])
    assert [(e["post_id"], e["text"]) for e in evidence] == [(bare.post.id, text), (wordy.post.id, text)]


def _live_state(client: redis.Redis, prefix: str) -> dict[str, tuple[str, object, bool]]:
    """Every live key under ``prefix`` with its value and whether it expires, the prefix left out."""
    state: dict[str, tuple[str, object, bool]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        if kind == "hash":
            value: object = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = client.get(key)
        state[str(key).removeprefix(prefix)] = (str(kind), value, client.ttl(key) > 0)
    return state


def test_one_flush_of_a_batch_leaves_what_one_flush_per_post_leaves(settings: Settings, scored: ScoredFactory) -> None:
    """The script sums a batch's counts before writing them and trims evidence once: the end state must
    be the post-by-post one, onto keys that already hold counts too."""
    words = ("牛奶", "变质", "退货", "召回", "抵制")
    batches: list[list[ScoredPost]] = [[], []]
    for n in range(60):
        base = noisy(
            scored,
            n,
            (("乳业", "食品", "华为")[n % 3], *(("食品",) if n % 4 == 0 else ())),
            tuple(words[(n + i) % 5] for i in range(n % 4)),
            duplicate=n % 5 == 0,
            bot=n % 7 == 0,
        )
        sentiment: Sentiment = ("negative", "negative", ("neutral", "positive")[n % 2])[n % 3]
        post = base.post.model_copy(
            update={"engagement": Engagement(likes=(n * 37) % 23), "id": f"q{n % 50}"}
        )  # replays too
        batches[n % 2].append(base.model_copy(update={"post": post, "sentiment": sentiment}))
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), decode_responses=True)
    by_batch = RedisSink(settings)
    one_by_one = RedisSink(settings.model_copy(update={"redis_prefix": f"{settings.redis_prefix}-each"}))
    try:
        for batch in batches:
            by_batch.add(batch)
            by_batch.flush()
            for item in batch:
                one_by_one.add([item])
                one_by_one.flush()
        batched = _live_state(client, settings.redis_prefix)
        assert batched == _live_state(client, f"{settings.redis_prefix}-each")
        trimmed = [key for key, (_, value, _) in batched.items() if ":neg:" in key and isinstance(value, list)]
        assert trimmed and all(len(cast(list[object], batched[key][1])) == 10 for key in trimmed)
    finally:
        delete_prefix(client, f"{settings.redis_prefix}-each")
