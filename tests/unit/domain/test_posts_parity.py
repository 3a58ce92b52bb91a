"""Parity of ``parse_post`` on orjson with the json module it read records with before.

The reference is ``parse_post`` with orjson taken away (every record then takes the json module's path,
the previous code): both must give equal posts, or rejections with the same reason, for the same records:
synthetic posts as ingest writes them, feed-style records, every bad input the suite knows, what orjson
reads differently from json (lone surrogates, integers beyond 64 bits, NaN, deep nesting), and fuzz.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.devkit.synthetic import SyntheticFeed
from pipeline.domain import posts
from pipeline.domain.posts import parse_post
from schemas.records import Post, Rejection
from tests.support.bad_inputs import BAD_INPUTS, good

NOW = datetime.now(UTC)


class _NoOrjson:
    """Stands in for orjson in ``pipeline.domain.posts``: every record goes the json module's way."""

    JSONDecodeError = orjson.JSONDecodeError

    @staticmethod
    def loads(raw: bytes | str) -> Any:
        raise orjson.JSONDecodeError("taken away for the reference", "", 0)


@contextmanager
def json_only() -> Iterator[None]:
    with mock.patch.object(posts, "orjson", _NoOrjson):
        yield


def outcome(result: Post | Rejection) -> Post | tuple[str, str, str]:
    return result if isinstance(result, Post) else (result.reason, result.stage, result.raw)


def assert_same(raw: bytes | str, max_chars: int = 5_000) -> Post | Rejection:
    new = parse_post(raw, max_chars, now=NOW)
    with json_only():
        old = parse_post(raw, max_chars, now=NOW)
    assert outcome(new) == outcome(old), raw[:300]
    return new


def _dumps(fields: dict[str, Any], ascii_only: bool = False) -> bytes:
    return json.dumps(fields, ensure_ascii=ascii_only).encode()


def _deep(depth: int) -> bytes:
    return b'{"id": "d1", "platform": "weibo", "author_id": "u", "text": "x", "event_time": "2026-01-01T00:00:00Z",'\
        b' "hashtags": ' + b"[" * depth + b"]" * depth + b"}"  # fmt: skip


SYNTHETIC = [
    post.model_dump_json().encode()
    for post in SyntheticFeed("bot-flood", 50, seed=5, run_id="parity", start=NOW - timedelta(hours=1)).take(2_000)
]
# What orjson reads differently from json, and what sits at the edge of it.
EDGES: list[bytes | str] = [
    _dumps(good(text="差\ud800评"), ascii_only=True),  # an escaped lone surrogate: json reads it, orjson refuses
    _dumps(good(text="\udfff"), ascii_only=True),
    _dumps(good(id="p\ud800"), ascii_only=True),
    _dumps(good(text="差\U0001f600评"), ascii_only=True),  # a surrogate pair
    _dumps(good(likes=2**64)),  # orjson reads integers beyond 64 bits as floats
    _dumps(good(likes=10**30)),
    _dumps(good(engagement={"likes": 2**64 - 1, "comments": 10**25})),
    _dumps(good(likes=-(2**63) - 1)),
    _dumps(good(likes=7.0)),
    _dumps(good(likes=7.5)),
    _dumps(good(schema_version=2.0)),
    _dumps(good(event_time=10**20)),
    _dumps(good(text_truncated=10**20)),
    _dumps(good(likes=float("nan"))),  # NaN and Infinity: json reads them, orjson refuses
    _dumps(good(comments=float("inf"))),
    _dumps(good(engagement={"reposts": float("-inf")})),
    b'{"id": "p1", "platform": "weibo", "author_id": "u", "text": "x", "likes": 1e400, "event_time": "2026-01-01"}',
    b"18446744073709551616",
    b"3.5",
    b"NaN",
    b"-Infinity",
    b'{"id": "a", "id": "b", "platform": "weibo", "author_id": "u", "text": "x", "event_time": "2026-01-01"}',
    b'{"id": "p1"}\x00',
    b'{"id": "p1",}',
    b"\xef\xbb\xbf{}",
    b'{"text": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 bytes
    b'{"text": "\xc0\x80"}',  # an overlong encoding
    b'{"text": "\xe4\xb8"}',  # a character cut short
    '{"id": "p1", "text": "\ud800"}',  # a str holding a lone surrogate
    good()["text"],
    json.dumps(good(), ensure_ascii=False),
    *(_deep(depth) for depth in (10, 500, 899, 900, 960, 990, 1000, 1024, 1025, 5_000)),
]


def test_synthetic_records_give_equal_posts_and_take_the_orjson_path() -> None:
    for raw in SYNTHETIC:
        assert isinstance(assert_same(raw), Post)
        assert not posts._differs_from_json(orjson.loads(raw)) and not posts._may_be_deep(raw)


def test_feed_style_records_give_equal_posts() -> None:
    records = [
        _dumps(good(likes="7", comments=2, hashtags="#华为# |#苹果")),
        _dumps(good(text=" 服务太差了 ", engagement={"likes": 3}, reposts=5), ascii_only=True),
        _dumps(good(text="长" * 6_000, lang="zh", url="https://x.test/1", parent_id="p0", parent_kind="repost")),
        _dumps(good(schema_version=1, hashtags=["#乳业#", "新闻"])),
        _dumps(good(text="差\x00评\x1b[31m！\u0085")),
    ]
    for raw in records:
        assert isinstance(assert_same(raw, 100), Post)


@pytest.mark.parametrize(("kind", "raw", "reason"), BAD_INPUTS, ids=[kind for kind, _, _ in BAD_INPUTS])
def test_bad_inputs_get_the_same_rejection(kind: str, raw: bytes, reason: str) -> None:
    result = assert_same(raw)
    assert isinstance(result, Rejection) and reason in result.reason, kind


@pytest.mark.parametrize("raw", EDGES, ids=[f"edge-{i}" for i in range(len(EDGES))])
def test_what_orjson_reads_differently_gets_the_same_outcome(raw: bytes | str) -> None:
    assert isinstance(assert_same(raw), Post | Rejection)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**80) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["id", "platform", "author_id", "text", "event_time", "hashtags", "likes", "comments", "engagement", "lang", "x"]
)


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=5), ascii_only=st.booleans())
def test_fuzz_field_values_give_the_same_outcome(changes: dict[str, Any], ascii_only: bool) -> None:
    assert_same(_dumps(good(**changes), ascii_only))


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_fuzz_arbitrary_input_gives_the_same_outcome(raw: bytes | str) -> None:
    assert_same(raw)
