"""Turn one raw record into a valid ``Post`` or a ``Rejection`` with a reason. Pure functions."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.records import Post, Rejection, Stage


def reject(raw: bytes | str, reason: str, stage: Stage = "ingest") -> Rejection:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return Rejection(reason=reason, stage=stage, raw=text[:10_000], rejected_at=datetime.now(UTC))


def rejected_post_id(rejection: Rejection) -> str | None:
    """The post id a refused record claims (a post's ``id``, a scored post's ``post.id``), for the logs;
    None when it has none that can be read. Untrusted: it is only ever reported, never looked up."""
    try:
        fields = json.loads(rejection.raw)
    except (ValueError, RecursionError):  # a depth bomb recurses once per level
        return None
    if isinstance(fields, dict) and isinstance(fields.get("post"), dict):
        fields = fields["post"]
    found = fields.get("id") if isinstance(fields, dict) else None
    return found[:200] if isinstance(found, str) else None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "invalid post: " + "; ".join(parts)


ENGAGEMENT_FIELDS = ("likes", "reposts", "comments")
# Kafka's default message limit: a larger record could not be produced anyway.
MAX_RECORD_BYTES = 1 << 20
# Posts may be scheduled or stamped by a clock a little ahead; a day is the most a live view should wait.
MAX_FUTURE = timedelta(days=1)
# Control characters (tab, newline and carriage return aside) and lone surrogates carry no meaning in a
# post and break what reads it later: terminals, log lines, UTF-8 encoders.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def normalise_fields(fields: dict[str, Any], max_chars: int) -> tuple[dict[str, Any], str | None]:
    """Trim and cap the text, accept ``#tag`` hashtags; say why the record is unusable, if it is."""
    text = fields.get("text")
    if not isinstance(text, str):
        return fields, "text: missing or not a string"
    text = CONTROL.sub("", text).strip()
    if not text:
        return fields, "text: empty"
    fields = dict(fields, text=text)
    flat = {k: fields.pop(k) for k in ENGAGEMENT_FIELDS if k in fields}
    if flat:  # CSV and flat JSON feeds give the counts as top-level columns
        nested = fields.get("engagement") or {}
        if not isinstance(nested, dict):
            return fields, "engagement: counts given both flat and as a non-object"
        fields["engagement"] = {**nested, **flat}
    if len(text) > max_chars:
        fields.update(text=text[:max_chars], text_truncated=True)
    tags = fields.get("hashtags")
    if isinstance(tags, str):
        tags = tags.replace("|", " ").split()
    if isinstance(tags, list | tuple):
        fields["hashtags"] = tuple(t.strip("#＃ ") for t in tags if isinstance(t, str) and t.strip("#＃ "))
    return fields, None


def parse_post(raw: bytes | str | dict[str, Any], max_chars: int, *, now: datetime | None = None) -> Post | Rejection:
    """Decode, normalise and validate one record; never raises. ``now`` bounds the event time (default: the clock)."""
    try:
        return _parse(raw, max_chars, now or datetime.now(UTC))
    except RecursionError:  # a depth bomb: json and pydantic recurse once per level
        return reject(_excerpt(raw), "nesting too deep: a post is a flat JSON object")


def _excerpt(raw: bytes | str | dict[str, Any]) -> bytes | str:
    return raw if isinstance(raw, bytes | str) else repr(raw)[:10_000]


# orjson reads the records that are plain JSON in UTF-8, which is what ingest and well-behaved producers
# write, about twice as fast as the json module. What it refuses is read again by ``_load_json``, which
# accepts some of it (escaped lone surrogates, NaN and Infinity, 1e400), words the reasons as ever, and
# finds invalid UTF-8 before malformed JSON. One thing orjson reads differently: an integer beyond
# 64 bits becomes a float, which pydantic then refuses as a count; a post has no float field, so a
# float where a post's numbers are (the record itself, its top level, its engagement) is read again too.
# And json's nesting limit is the interpreter's recursion limit less the stack in use (about 990 at most),
# orjson's 1024: a record with brackets enough to be nested that deep is read by json, as it always was.
_REREAD = object()
_DEEP = 900


def _may_be_deep(raw: bytes | str) -> bool:
    if len(raw) < 2 * _DEEP:
        return False
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{") >= _DEEP
    return raw.count("[") + raw.count("{") >= _DEEP


def _differs_from_json(fields: Any) -> bool:
    if type(fields) is not dict:
        return type(fields) is float
    if float in map(type, fields.values()):
        return True
    engagement = fields.get("engagement")
    return type(engagement) is dict and float in map(type, engagement.values())


def _parse(raw: bytes | str | dict[str, Any], max_chars: int, now: datetime) -> Post | Rejection:
    if isinstance(raw, dict):
        return _post_from_fields(raw, json.dumps(raw, ensure_ascii=False, default=str), max_chars, now)
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_RECORD_BYTES:
        return reject(raw[:10_000], f"record too large: {size} bytes, the limit is {MAX_RECORD_BYTES}")
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        fields = _REREAD
    if fields is _REREAD or _differs_from_json(fields) or _may_be_deep(raw):
        fields, problem = _load_json(raw)
        if problem:
            return reject(raw, problem)
    return _post_from_fields(fields, raw, max_chars, now)


def _load_json(raw: bytes | str) -> tuple[Any, str | None]:
    """The value of a JSON record read by the json module, or why it is refused (``parse_post``'s reasons)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8: undecodable byte at offset {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def _post_from_fields(fields: Any, source: bytes | str, max_chars: int, now: datetime) -> Post | Rejection:
    """Normalise and validate a decoded record; ``source`` is what a rejection carries."""
    if not isinstance(fields, dict):
        return reject(source, f"a post must be a JSON object, not {type(fields).__name__}")
    fields, problem = normalise_fields(fields, max_chars)
    if problem:
        return reject(source, problem)
    try:
        post = Post.model_validate(fields)
    except ValidationError as exc:
        return reject(source, _describe(exc))
    if post.event_time > now + MAX_FUTURE:
        return reject(source, f"event_time: {post.event_time.isoformat()} is more than a day ahead of now")
    return post


# A pseudonymous author id says so, so that a post pseudonymised at ingest is not keyed twice by the worker.
PSEUDONYM_PREFIX = "h1:"


def pseudonym(author_id: str, key: bytes) -> str:
    """A keyed hash (HMAC-SHA256) of an author id: the same author keeps one pseudonym, so bot detection
    still works, and without the key nobody can tell who it is. An id that is one already stays."""
    if not key or author_id.startswith(PSEUDONYM_PREFIX):
        return author_id
    return PSEUDONYM_PREFIX + hmac.new(key, author_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def pseudonymise(post: Post, key: bytes) -> Post:
    """The post with its author id replaced by its pseudonym (unchanged without a key)."""
    author = pseudonym(post.author_id, key)
    return post if author == post.author_id else post.model_copy(update={"author_id": author})


class RecentIds:
    """Remembers the last ``capacity`` stored post ids, to answer repeats without unbounded memory."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def contains(self, post_id: str) -> bool:
        if post_id in self._ids:
            self._ids.move_to_end(post_id)
            return True
        return False

    def remember(self, post_id: str) -> None:
        self._ids[post_id] = None
        self._ids.move_to_end(post_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
