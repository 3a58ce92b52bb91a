"""Records other producers may write to posts.raw, each with the reason yuqing must refuse it for.

One list for every level that judges input: the validator (unit), ingest and the worker (integration,
e2e). Each entry is (kind, raw bytes, a fragment the rejection reason must hold).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any


def good(post_id: str = "good-1", **changes: Any) -> dict[str, Any]:
    post = {
        "id": post_id,
        "platform": "weibo",
        "author_id": "u-1",
        "text": "这家店的服务太差了",
        "event_time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }
    return {**post, **changes}


def _json(**changes: Any) -> bytes:
    return json.dumps(good(f"bad-{len(changes)}", **changes), ensure_ascii=False).encode()


def _without(field: str) -> bytes:
    post = good("bad-missing")
    del post[field]
    return json.dumps(post).encode()


BAD_INPUTS: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b'{"id": "p1", "text": ', "malformed JSON"),
    ("empty record", b"", "malformed JSON"),
    ("byte-order mark", b"\xef\xbb\xbf" + _json(), "malformed JSON"),
    ("invalid UTF-8", b"\xc3\x28" + _json(), "invalid UTF-8"),
    ("JSON array", b"[1, 2]", "a post must be a JSON object"),
    ("JSON string", b'"a post"', "a post must be a JSON object"),
    ("JSON null", b"null", "a post must be a JSON object"),
    ("JSON number", b"42", "a post must be a JSON object"),
    ("empty object", b"{}", "text: missing"),
    ("empty text", _json(text=""), "text: empty"),
    ("blank text", _json(text=" \n\t "), "text: empty"),
    ("text of control characters only", _json(text="\x00\x01\x7f\x85"), "text: empty"),
    ("text as a number", _json(text=12), "text: missing or not a string"),
    ("text as a list", _json(text=["差"]), "text: missing or not a string"),
    ("text null", _json(text=None), "text: missing or not a string"),
    ("no id", _without("id"), "id: Field required"),
    ("id with a space", _json(id="has space"), "id:"),
    ("id with a control character", _json(id="p\x01"), "id:"),
    ("id of 129 characters", _json(id="p" * 129), "id:"),
    ("no platform", _without("platform"), "platform: Field required"),
    ("no author", _without("author_id"), "author_id: Field required"),
    ("empty author", _json(author_id=""), "author_id:"),
    ("no event time", _without("event_time"), "event_time: Field required"),
    ("unreadable event time", _json(event_time="yesterday"), "event_time"),
    ("event time in 1900", _json(event_time="1900-01-01T00:00:00Z"), "event_time: Value error, before 2000-01-01"),
    ("event time in 1999", _json(event_time="1999-12-31T23:59:59Z"), "before 2000-01-01"),
    ("event time in 2200", _json(event_time="2200-01-01T00:00:00Z"), "more than a day ahead"),
    (
        "event time two days ahead",
        _json(event_time=(datetime.now(UTC) + timedelta(days=2)).isoformat()),
        "more than a day ahead",
    ),
    ("unknown field", _json(colour="red"), "colour: Extra inputs are not permitted"),
    ("negative likes", _json(likes=-3), "engagement.likes"),
    ("likes as words", _json(likes="many"), "engagement.likes"),
    ("engagement not an object", _json(engagement=[1, 2]), "engagement"),
    ("unknown parent kind", _json(parent_id="p0", parent_kind="quote"), "parent_kind"),
    ("URL of 2,049 characters", _json(url="https://x.test/" + "a" * 2034), "url"),
    ("language code of 17 characters", _json(lang="z" * 17), "lang"),
    ("schema version 3", _json(schema_version=3), "schema_version"),
    ("hashtag with a tab", _json(hashtags=["乳业\t新闻"]), "control, key or glob character"),
    ("hashtag with a newline", _json(hashtags=["乳业\n新闻"]), "control, key or glob character"),
    ("hashtag with a NUL", _json(hashtags=["乳业\x00"]), "control, key or glob character"),
    ("hashtag with a colon", _json(hashtags=["乳业:新闻"]), "control, key or glob character"),
    ("hashtag *", _json(hashtags=["*"]), "control, key or glob character"),
    ("hashtag with a glob class", _json(hashtags=["[乳业]"]), "control, key or glob character"),
    ("hashtag _all", _json(hashtags=["_all"]), "reserved"),
    ("hashtag starting with _", _json(hashtags=["_internal"]), "reserved"),
    ("33 hashtags", _json(hashtags=[f"话题{i}" for i in range(33)]), "hashtags: Tuple should have at most 32 items"),
    ("20,000 hashtags", _json(hashtags=[f"t{i}" for i in range(20_000)]), "hashtags: Tuple should have at most 32"),
    ("hashtag of 65 characters", _json(hashtags=["话" * 65]), "at most 64 characters"),
    ("hashtag of 5,000 characters", _json(hashtags=["话" * 5_000]), "at most 64 characters"),
    ("depth bomb", b'{"text": "x", "engagement": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nesting too deep"),
    ("record of 2 MB", _json(text="差" * 700_000), "record too large"),
]
