"""ClickHouseSink and ClickHouseHistory against the real engines: the 18.16 server and chDB."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.stores.clickhouse.engines import open_engine
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.clickhouse.sink import ClickHouseSink
from pipeline.stores.sink import SinkError, count_buckets
from schemas.records import SENTIMENTS, Aggregate, Engagement, Post, ScoredPost, SentimentProbabilities
from tests.support.records import scored as support_scored

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# A subject that would break naive quoting on either engine.
ODD_SUBJECT = "O'Brien \\ 话题\n{x:String} %(y)s"
SUBJECT_SETS = (("brand_a",), ("brand_a", "brand_b"), ("brand_b", ODD_SUBJECT), (ODD_SUBJECT,))
PLATFORMS = ("weibo", "douyin")


def make_posts(n: int, *, start: datetime = START) -> list[ScoredPost]:
    """n scored posts spread over n // 10 + 1 minutes, with every subject set and sentiment."""
    posts = []
    for i in range(n):
        post = Post(
            id=f"post-{i}",
            platform=PLATFORMS[i % len(PLATFORMS)],
            author_id=f"author-{i % 7}",
            text=f"第{i}条 text with 'quotes' and \\ backslash",
            event_time=start + timedelta(seconds=6 * i, microseconds=123),
            hashtags=("tag",) if i % 2 else (),
            engagement=Engagement(likes=i, reposts=1, comments=2),
            url=f"https://example.com/{i}" if i % 3 else None,
        )
        posts.append(
            ScoredPost(
                post=post,
                sentiment=SENTIMENTS[i % len(SENTIMENTS)],
                probabilities=SentimentProbabilities(negative=0.2, neutral=0.3, positive=0.5),
                subjects=SUBJECT_SETS[i % len(SUBJECT_SETS)],
                cluster_id=post.id,
                model_id="test-model",
                model_version="1",
                scored_at=start + timedelta(minutes=30),
                processing_ms=12.5,
            )
        )
    return posts


def expected_series(posts: list[ScoredPost]) -> list[Aggregate]:
    counts = count_buckets(posts)
    return [
        Aggregate(minute=k.minute, subject=k.subject, platform=k.platform, sentiment=k.sentiment, count=c)
        for k, c in sorted(
            counts.items(), key=lambda item: (item[0].minute, item[0].subject, item[0].platform, item[0].sentiment)
        )
    ]


def expected_subject_sentiment(posts: list[ScoredPost]) -> dict[tuple[str, str], int]:
    unique = {post.post.id: post for post in posts}.values()
    return dict(Counter((subject, post.sentiment) for post in unique for subject in post.subjects))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flush_then_read_back(clickhouse_url: str) -> None:
    posts = make_posts(200)
    sink = ClickHouseSink(clickhouse_url)
    history = ClickHouseHistory(clickhouse_url)
    try:
        assert history.total_posts() == 0  # an empty store reads as empty
        sink.add(posts[:120])
        sink.add(posts[120:])
        assert sink.pending == 200
        sink.flush()
        assert sink.pending == 0

        assert history.total_posts() == 200
        assert history.subject_sentiment_counts() == expected_subject_sentiment(posts)
        series = history.minute_series(START)
        assert series == expected_series(posts)
        assert all(a.minute.tzinfo is not None and a.minute.utcoffset() == timedelta(0) for a in series)
    finally:
        sink.close()
        history.close()


def test_minute_series_filters(clickhouse_url: str) -> None:
    posts = make_posts(100)  # 6 s apart: minutes 12:00 .. 12:09
    with_sink(clickhouse_url, posts)
    with ClickHouseHistory.from_url(clickhouse_url) as history:
        everything = expected_series(posts)
        since, until = START + timedelta(minutes=2), START + timedelta(minutes=5)
        assert history.minute_series(since, until) == [a for a in everything if since <= a.minute < until]
        odd = history.minute_series(START, subject=ODD_SUBJECT)
        assert odd and odd == [a for a in everything if a.subject == ODD_SUBJECT]
        assert history.minute_series(START, subject="no such subject") == []
        # Naive datetimes are UTC.
        naive = history.minute_series(since.replace(tzinfo=None), until.replace(tzinfo=None))
        assert naive == history.minute_series(since, until)
        assert history.minute_series(START + timedelta(days=1)) == []


def test_replays_never_double_count(clickhouse_url: str) -> None:
    posts = make_posts(150)
    sink = ClickHouseSink(clickhouse_url)
    history = ClickHouseHistory(clickhouse_url)
    try:
        sink.add(posts)
        sink.flush()
        before = (history.total_posts(), history.subject_sentiment_counts(), history.minute_series(START))

        # A replay after a crash: the same posts again, in another batching, with duplicates inside one batch.
        sink.add(posts[50:])
        sink.add(posts[50:60])
        sink.flush()
        sink.add(posts[:50])
        sink.flush()
        after = (history.total_posts(), history.subject_sentiment_counts(), history.minute_series(START))
        assert after == before
        assert after[0] == 150

        # Once ClickHouse merges, the replayed rows are really gone and the counts still hold.
        engine = open_engine(clickhouse_url)
        try:
            engine.execute(f"OPTIMIZE TABLE {engine.database}.scored_posts FINAL")
            engine.execute(f"OPTIMIZE TABLE {engine.database}.minute_rollup FINAL")
            rows = engine.select(f"SELECT count() AS n FROM {engine.database}.scored_posts")
            assert int(rows[0]["n"]) == 150
        finally:
            engine.close()
        assert (history.total_posts(), history.subject_sentiment_counts(), history.minute_series(START)) == before
    finally:
        sink.close()
        history.close()


def test_stored_row_round_trips(clickhouse_url: str) -> None:
    sample = make_posts(3)[1]
    text = '控制 \0\t\r\x01 \'quote\' "dq" \\N \u2028 \x85 \x1c 😀 [1, {"a": 2}] %s {t:String}'
    post = sample.model_copy(update={"post": sample.post.model_copy(update={"text": text})})
    with_sink(clickhouse_url, [post])
    engine = open_engine(clickhouse_url)
    try:
        rows = engine.select(
            "SELECT post_id, text, toUnixTimestamp(event_time) AS ts, toUnixTimestamp(minute) AS m,"
            " url, lang, subjects, hashtags, likes, sentiment"
            f" FROM {engine.database}.scored_posts WHERE post_id = {{id:String}}",
            {"id": post.post.id},
        )
    finally:
        engine.close()
    assert len(rows) == 1
    row = rows[0]
    assert row["text"] == post.post.text
    assert int(row["ts"]) == int(post.post.event_time.timestamp())
    assert int(row["m"]) % 60 == 0 and int(row["ts"]) - int(row["m"]) < 60
    assert (row["url"], row["lang"]) == (post.post.url, "")
    assert list(row["subjects"]) == list(post.subjects)
    assert list(row["hashtags"]) == list(post.post.hashtags)
    assert (int(row["likes"]), row["sentiment"]) == (1, post.sentiment)


def test_failed_flush_keeps_buffer_and_retries(clickhouse_url: str) -> None:
    posts = make_posts(40)
    sink = ClickHouseSink(clickhouse_url)
    engine = open_engine(clickhouse_url)
    try:
        sink.add(posts[:10])
        sink.flush()
        # Take the table away under the sink: its next insert fails for real.
        engine.execute(f"RENAME TABLE {engine.database}.scored_posts TO {engine.database}.scored_posts_away")
        sink.add(posts[10:])
        with pytest.raises(SinkError):
            sink.flush()
        assert sink.pending == 30

        engine.execute(f"RENAME TABLE {engine.database}.scored_posts_away TO {engine.database}.scored_posts")
        sink.flush()
        assert sink.pending == 0
        history = ClickHouseHistory(engine=engine)
        assert history.total_posts() == 40
        # The rollup got the first 10 and the 30 retried ones: exactly once each.
        assert history.subject_sentiment_counts() == expected_subject_sentiment(posts)
    finally:
        sink.close()
        engine.close()


def test_unreachable_server_raises_sink_error_and_keeps_buffer() -> None:
    sink = ClickHouseSink(f"clickhouse://default@127.0.0.1:{closed_port()}/yuqing?connect_timeout=2")
    try:
        sink.add(make_posts(5))
        for _ in range(2):  # and again: a retry fails the same way, still holding every row
            with pytest.raises(SinkError):
                sink.flush()
            assert sink.pending == 5
    finally:
        sink.close()


def with_sink(url: str, posts: list[ScoredPost]) -> None:
    with ClickHouseSink.from_url(url) as sink:
        sink.add(posts)
        sink.flush()


def test_deduplicated_rollup_and_hot_words(clickhouse_url: str) -> None:
    posts = make_posts(12)
    noisy = [
        p.model_copy(update={"terms": ("牛奶", f"词{i % 3}"), "duplicate": i % 4 == 1, "suspected_bot": i % 4 == 2})
        for i, p in enumerate(posts)
    ]
    with ClickHouseSink(clickhouse_url) as sink, ClickHouseHistory(clickhouse_url) as history:
        sink.add(noisy)
        sink.flush()
        sink.add(noisy)  # replayed
        sink.flush()
        kept = [p for p in noisy if p.counts_deduplicated]
        raw = history.subject_sentiment_counts()
        deduplicated = history.subject_sentiment_counts(deduplicated=True)
        assert sum(raw.values()) == sum(len(p.subjects) for p in noisy)
        assert sum(deduplicated.values()) == sum(len(p.subjects) for p in kept)
        series = history.minute_series(START, subject="brand_a", deduplicated=True)
        assert sum(a.count for a in series) == sum(1 for p in kept if "brand_a" in p.subjects)
        words = history.hot_words("brand_a", START, n=2)
        with_a = [p for p in kept if "brand_a" in p.subjects]
        assert words[0] == ("牛奶", len(with_a))
        assert len(words) == 2
        assert history.hot_words("brand_a", START + timedelta(days=1)) == []
        assert history.hot_words(None, START, n=1) == [("牛奶", len(kept))]  # each post once, whatever its subjects


def test_posts_behind_a_number_page_and_filter(clickhouse_url: str) -> None:
    posts = make_posts(30)
    with ClickHouseSink(clickhouse_url) as sink, ClickHouseHistory(clickhouse_url) as history:
        sink.add(posts)
        sink.flush()
        sink.add(posts)  # replayed rows still show once
        sink.flush()
        about_a = [p for p in posts if "brand_a" in p.subjects]
        first = history.posts(START, subject="brand_a", limit=4)
        rest = history.posts(START, subject="brand_a", limit=100, offset=4)
        ids = [row["post_id"] for row in first + rest]
        assert sorted(ids) == sorted(p.post.id for p in about_a) and len(set(ids)) == len(ids)
        newest = max(about_a, key=lambda p: (p.post.event_time, p.post.id))
        assert first[0]["event_time"] == newest.post.event_time.replace(microsecond=0).isoformat()
        negative = history.posts(START, sentiment="negative", platform="weibo", subject=ODD_SUBJECT, limit=100)
        expected = {p.post.id for p in posts if p.sentiment == "negative" and p.post.platform == "weibo"}
        assert {row["post_id"] for row in negative} == {i for i in expected if any(
            p.post.id == i and ODD_SUBJECT in p.subjects for p in posts)}  # fmt: skip
        assert history.posts(START, subject="nobody") == []


def test_a_replay_judged_otherwise_keeps_the_first_verdict(clickhouse_url: str) -> None:
    """Another worker may re-score a replayed post with another noise verdict; as in Redis, the first stays."""
    first = support_scored("r1", "negative", ("乳业",), duplicate=True)
    replay = first.model_copy(update={"duplicate": False, "scored_at": first.scored_at + timedelta(seconds=5)})
    with ClickHouseSink.from_url(clickhouse_url) as sink:
        sink.add([first])
        sink.flush()
        sink.add([replay, support_scored("r2", "negative", ("乳业",))])
        sink.flush()
        twice = support_scored("r3", "negative", ("乳业",), duplicate=True)  # both in one batch: the first stays
        sink.add([twice, twice.model_copy(update={"duplicate": False})])
        sink.flush()
    with ClickHouseHistory.from_url(clickhouse_url) as history:
        assert history.total_posts() == 3
        assert history.subject_sentiment_counts() == {("乳业", "negative"): 3}
        assert history.subject_sentiment_counts(deduplicated=True) == {("乳业", "negative"): 1}  # r2 alone
