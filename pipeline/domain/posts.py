"""Turn one raw record into a valid ``Post`` or a ``Rejection`` with a reason. Pure functions."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas.records import Post, Rejection, Stage


def reject(raw: bytes | str, reason: str, stage: Stage = "ingest") -> Rejection:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return Rejection(reason=reason, stage=stage, raw=text[:10_000], rejected_at=datetime.now(UTC))


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "invalid post: " + "; ".join(parts)


ENGAGEMENT_FIELDS = ("likes", "reposts", "comments")


def normalise_fields(fields: dict[str, Any], max_chars: int) -> tuple[dict[str, Any], str | None]:
    """Trim and cap the text, accept ``#tag`` hashtags; say why the record is unusable, if it is."""
    text = fields.get("text")
    if not isinstance(text, str):
        return fields, "text: missing or not a string"
    text = text.strip()
    if not text:
        return fields, "text: empty"
    fields = dict(fields, text=text)
    flat = {k: fields.pop(k) for k in ENGAGEMENT_FIELDS if k in fields}
    if flat:  # CSV and flat JSON feeds give the counts as top-level columns
        fields["engagement"] = {**(fields.get("engagement") or {}), **flat}
    if len(text) > max_chars:
        fields.update(text=text[:max_chars], text_truncated=True)
    tags = fields.get("hashtags")
    if isinstance(tags, str):
        tags = tags.replace("|", " ").split()
    if isinstance(tags, list | tuple):
        fields["hashtags"] = tuple(t.strip("#＃ ") for t in tags if isinstance(t, str) and t.strip("#＃ "))
    return fields, None


def parse_post(raw: bytes | str | dict[str, Any], max_chars: int) -> Post | Rejection:
    """Decode, normalise and validate one record; never raises."""
    if isinstance(raw, dict):
        fields: Any = raw
        source: bytes | str = json.dumps(raw, ensure_ascii=False, default=str)
    else:
        source = raw
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            return reject(raw, f"invalid UTF-8: undecodable byte at offset {exc.start}")
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            return reject(raw, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(fields, dict):
        return reject(source, f"a post must be a JSON object, not {type(fields).__name__}")
    fields, problem = normalise_fields(fields, max_chars)
    if problem:
        return reject(source, problem)
    try:
        return Post.model_validate(fields)
    except ValidationError as exc:
        return reject(source, _describe(exc))


class RecentIds:
    """Remembers the last ``capacity`` post ids, to refuse duplicates without unbounded memory."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen_before(self, post_id: str) -> bool:
        if post_id in self._ids:
            self._ids.move_to_end(post_id)
            return True
        self._ids[post_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return False
