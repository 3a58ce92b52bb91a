"""The synthetic feed makes valid, unique, reproducible posts, and its scenarios do what they say."""

from __future__ import annotations

import difflib
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from pipeline.devkit.synthetic import (
    EMOJI,
    PLATFORMS_ZH,
    SUBJECTS,
    LabelledPost,
    SyntheticFeed,
    SyntheticFeedError,
)
from schemas.records import Post

START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def feed(scenario: str = "baseline", rate: float = 20.0, seed: int = 1, **options: object) -> SyntheticFeed:
    return SyntheticFeed(scenario, rate, seed=seed, run_id="t1", start=START, **options)


def offset(item: LabelledPost) -> float:
    return (item.post.event_time - START).total_seconds()


def test_posts_validate_and_ids_are_unique() -> None:
    posts = feed().take(3_000)
    for post in posts:
        assert Post.model_validate_json(post.model_dump_json()) == post
    assert len({p.id for p in posts}) == len(posts)
    assert all(p.id.startswith("t1-") for p in posts)


def test_runs_never_share_ids() -> None:
    first = SyntheticFeed("baseline", 10, seed=1).take(50)
    second = SyntheticFeed("baseline", 10, seed=1).take(50)
    assert {p.id for p in first}.isdisjoint(p.id for p in second)
    assert [p.text for p in first] == [p.text for p in second]


def test_same_seed_same_feed_and_other_seed_another() -> None:
    assert feed(seed=5).take(500) == feed(seed=5).take(500)
    assert [p.text for p in feed(seed=5).take(50)] != [p.text for p in feed(seed=6).take(50)]
    split = feed(seed=5)
    assert split.take(200) + split.take(300) == feed(seed=5).take(500)


def test_event_times_advance_at_the_rate() -> None:
    posts = feed(rate=10).take(101)
    assert posts[0].event_time == START
    assert posts[-1].event_time == START + timedelta(seconds=10)
    assert all(a.event_time <= b.event_time for a, b in pairwise(posts))


def test_the_organic_mix_looks_like_social_media() -> None:
    items = feed(seed=2).take_labelled(10_000)
    posts = [i.post for i in items]
    english = [p for p in posts if p.lang == "en"]
    assert 0.07 < len(english) / len(posts) < 0.13
    assert all(p.platform == "x" for p in english)
    assert set(Counter(p.platform for p in posts)) == set(PLATFORMS_ZH)
    tagged = [p for p in posts if p.hashtags]
    assert 0.4 < len(tagged) / len(posts) < 0.6
    assert {p.hashtags[0] for p in tagged} <= set(SUBJECTS)
    assert all("#" not in tag for p in tagged for tag in p.hashtags)
    reposts = [p for p in posts if p.parent_kind == "repost"]
    assert reposts and all(p.parent_id for p in reposts)
    authors = Counter(p.author_id for p in posts)
    assert authors.most_common(1)[0][1] > 20 * (len(posts) / len(authors))  # a few very active accounts
    likes = sorted(p.engagement.likes for p in posts)
    assert likes[-1] > 50 * likes[len(likes) // 2]  # heavy tail
    assert Counter(i.label for i in items).keys() == {"negative", "neutral", "positive"}


def test_crisis_raises_the_subjects_negative_share_in_its_window() -> None:
    subject = SUBJECTS[2]
    options = {"subject": subject, "start_s": 60.0, "duration_s": 120.0, "decay_s": 30.0}
    items = feed("crisis", rate=50, seed=3, **options).take_labelled(20_000)

    def negative_share(low: float, high: float) -> float:
        about = [i for i in items if i.post.hashtags == (subject,) and low <= offset(i) < high]
        assert len(about) > 50
        return sum(i.label == "negative" for i in about) / len(about)

    before, during, long_after = negative_share(0, 60), negative_share(80, 180), negative_share(300, 400)
    assert during > 2 * before and during > 0.6
    assert long_after < 0.45
    surge = [i for i in items if i.kind == "crisis"]
    assert surge and all(60 <= offset(i) < 180 + 30 * 5 for i in surge)
    # Until the crisis starts the feed is the baseline feed of the same seed.
    calm = [i.post for i in items if offset(i) < 60]
    assert calm == feed("baseline", rate=50, seed=3).take(len(calm))


def test_bot_flood_has_near_duplicates_from_fresh_accounts() -> None:
    options = {"start_s": 20.0, "every_s": 100.0, "burst_s": 20.0, "bursts": 2}
    items = feed("bot-flood", rate=30, seed=4, **options).take_labelled(8_000)
    bots = [i for i in items if i.kind == "bot"]
    assert len(bots) > 300
    assert all(20 <= offset(i) < 40 or 120 <= offset(i) < 140 for i in bots)
    assert all(i.post.hashtags == (SUBJECTS[1],) for i in bots)
    # Weibo shows the topic inside the text; compare the messages without it.
    first_burst = [i.post.text.removeprefix(f"#{SUBJECTS[1]}# ") for i in bots if offset(i) < 100]
    seed_text, copies = Counter(first_burst).most_common(1)[0]
    assert copies > 20  # exact copies
    padded = [t for t in first_burst if t != seed_text and any(e in t for e in EMOJI)]
    edited = [t for t in first_burst if t != seed_text and t not in padded]
    assert padded and edited
    assert all(seed_text in "".join(c for c in t if c not in EMOJI) for t in padded)
    assert all(difflib.SequenceMatcher(None, seed_text, t).ratio() > 0.8 for t in edited)
    bot_authors = [i.post.author_id for i in bots]
    assert len(set(bot_authors)) == len(bot_authors)
    assert set(bot_authors).isdisjoint(i.post.author_id for i in items if i.kind != "bot")


def test_paced_yields_in_real_time_with_current_event_times() -> None:
    began = time.monotonic()
    posts = list(feed(rate=200).paced(0.25))
    elapsed = time.monotonic() - began
    assert 40 <= len(posts) <= 60
    assert 0.2 <= elapsed < 2
    assert all(abs((datetime.now(UTC) - p.event_time).total_seconds()) < 5 for p in posts)
    assert list(feed().paced(0)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "meltdown"}, "baseline, crisis, bot-flood"),
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"run_id": "has space"}, "run_id"),
        ({"scenario": "baseline", "start_s": 5}, "has no option start_s"),
        ({"scenario": "crisis", "duration_s": -10}, "duration_s"),
        ({"scenario": "crisis", "start_s": -1}, "start_s"),
        ({"scenario": "crisis", "multiplier": 0.5}, "multiplier"),
        ({"scenario": "crisis", "subject": " "}, "subject"),
        ({"scenario": "crisis", "crisis_start_s": 5}, "its options: subject, start_s"),
        ({"scenario": "bot-flood", "every_s": 10, "burst_s": 20}, "every_s"),
        ({"scenario": "bot-flood", "stance": "angry"}, "stance"),
        ({"scenario": "bot-flood", "bursts": 1.5}, "bursts"),
    ],
)
def test_bad_options_raise_a_clear_value_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"scenario": "baseline", "rate": 10.0, **kwargs}
    with pytest.raises(SyntheticFeedError, match=message) as caught:
        SyntheticFeed(**arguments)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_bad_calls_raise() -> None:
    with pytest.raises(SyntheticFeedError):
        feed().take(-1)
    with pytest.raises(ValueError, match="duration_s"):
        next(feed().paced(-1.0))
