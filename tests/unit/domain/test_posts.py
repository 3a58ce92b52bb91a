from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.domain.posts import RecentIds, parse_post
from schemas.records import Post, Rejection

GOOD = {
    "id": "p1",
    "platform": "weibo",
    "author_id": "u1",
    "text": " 服务太差了 ",
    "event_time": "2026-11-28T12:00:05+08:00",
}


def test_valid_post_is_normalised() -> None:
    post = parse_post(json.dumps(GOOD).encode(), 100)
    assert isinstance(post, Post)
    assert post.text == "服务太差了"
    assert post.event_time.utcoffset() is not None and post.event_time.hour == 4


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": "p1", "text": ', "malformed JSON"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"[1, 2]", "a post must be a JSON object"),
        (json.dumps({**GOOD, "text": "   "}).encode(), "text: empty"),
        (json.dumps({**GOOD, "text": 12}).encode(), "text: missing or not a string"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "author_id"}).encode(), "author_id: Field required"),
        (json.dumps({**GOOD, "event_time": "yesterday"}).encode(), "event_time"),
        (json.dumps({**GOOD, "likes": -3}).encode(), "engagement.likes"),
        (json.dumps({**GOOD, "id": "has space"}).encode(), "id:"),
        (json.dumps({**GOOD, "colour": "red"}).encode(), "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_records_get_a_clear_reason(raw: bytes, reason: str) -> None:
    result = parse_post(raw, 100)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert result.stage == "ingest"


def test_oversized_text_is_cut_and_flagged() -> None:
    post = parse_post({**GOOD, "text": "长" * 500}, 100)
    assert isinstance(post, Post)
    assert len(post.text) == 100 and post.text_truncated


def test_flat_engagement_and_hashtag_strings_are_accepted() -> None:
    post = parse_post({**GOOD, "likes": "7", "comments": 2, "hashtags": "#华为# |#苹果"}, 100)
    assert isinstance(post, Post)
    assert post.engagement.likes == 7 and post.engagement.comments == 2
    assert post.hashtags == ("华为", "苹果")


@given(st.binary(max_size=300) | st.text(max_size=300))
def test_parse_never_raises(raw: bytes | str) -> None:
    assert isinstance(parse_post(raw, 50), Post | Rejection)


def test_recent_ids_are_bounded() -> None:
    recent = RecentIds(capacity=2)
    assert not recent.seen_before("a")
    assert recent.seen_before("a")
    recent.seen_before("b")
    recent.seen_before("c")  # evicts "a"
    assert not recent.seen_before("a")
