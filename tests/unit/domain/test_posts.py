from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.domain.posts import CONTROL, PSEUDONYM_PREFIX, RecentIds, parse_post, pseudonymise
from schemas.records import Post, Rejection
from tests.support.bad_inputs import BAD_INPUTS, good

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


def test_recent_ids_are_bounded_and_hold_only_what_was_remembered() -> None:
    recent = RecentIds(capacity=2)
    assert not recent.contains("a") and not recent.contains("a")  # asking remembers nothing
    recent.remember("a")
    assert recent.contains("a")
    recent.remember("b")
    recent.remember("c")  # evicts "a"
    assert not recent.contains("a") and recent.contains("b") and recent.contains("c")


@pytest.mark.parametrize(("kind", "raw", "reason"), BAD_INPUTS, ids=[kind for kind, _, _ in BAD_INPUTS])
def test_every_bad_input_kind_is_refused_with_its_reason(kind: str, raw: bytes, reason: str) -> None:
    result = parse_post(raw, 5_000)
    assert isinstance(result, Rejection), kind
    assert reason in result.reason, (kind, result.reason)
    assert len(result.raw) <= 10_000


def test_the_bad_input_corpus_is_broad() -> None:
    assert len({kind for kind, _, _ in BAD_INPUTS}) == len(BAD_INPUTS) >= 40


def test_control_characters_are_removed_from_the_text() -> None:
    post = parse_post(json.dumps(good(text="差\x00评\x1b[31m！\ud800\u0085")).encode(), 100)
    assert isinstance(post, Post) and post.text == "差评[31m！"


def test_the_upper_event_time_bound_follows_now() -> None:
    raw = json.dumps(good(event_time="2030-01-01T00:00:00Z")).encode()
    assert isinstance(parse_post(raw, 100, now=datetime(2029, 12, 31, 1, tzinfo=UTC)), Post)
    assert isinstance(parse_post(raw, 100, now=datetime(2029, 12, 30, tzinfo=UTC)), Rejection)


def test_a_v1_record_is_read_and_held_to_the_v2_bounds() -> None:
    post = parse_post(json.dumps(good(schema_version=1, hashtags=["#乳业#", "新闻"])).encode(), 100)
    assert isinstance(post, Post) and post.hashtags == ("乳业", "新闻")
    assert isinstance(parse_post(json.dumps(good(schema_version=1, hashtags=["_all"])).encode(), 100), Rejection)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(["id", "platform", "author_id", "text", "event_time", "hashtags", "likes", "engagement", "x"])


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(parse_post(raw, 100), Post | Rejection)


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=5))
def test_fuzz_arbitrary_field_values_never_raise_and_accepted_posts_are_bounded(changes: dict[str, Any]) -> None:
    result = parse_post(json.dumps(good(**changes)).encode(), 100)
    if isinstance(result, Post):
        assert len(result.hashtags) <= 32 and all(0 < len(tag) <= 64 for tag in result.hashtags)
        assert not CONTROL.search(result.text) and len(result.text) <= 100
        assert result.event_time >= datetime(2000, 1, 1, tzinfo=UTC)


def test_pseudonyms_are_keyed_stable_and_never_applied_twice() -> None:
    post = parse_post(json.dumps(good(author_id="u-42")).encode(), 100)
    assert isinstance(post, Post)
    hashed = pseudonymise(post, b"k" * 32)
    assert hashed.author_id.startswith(PSEUDONYM_PREFIX) and "u-42" not in hashed.author_id
    assert pseudonymise(post, b"k" * 32).author_id == hashed.author_id  # one author, one pseudonym
    assert pseudonymise(post, b"other key" * 4).author_id != hashed.author_id
    assert pseudonymise(hashed, b"k" * 32) == hashed  # the worker leaves an ingest pseudonym alone
    assert pseudonymise(post, b"") == post  # off unless a key is set
    assert isinstance(parse_post(hashed.model_dump_json().encode(), 100), Post)  # still a valid id
