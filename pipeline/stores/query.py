"""Rolling-window answers from Redis and minute history from ClickHouse, as rows for tables or JSON."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from pipeline.errors import YuqingError
from pipeline.stores.redis.keys import ALL_SUBJECTS
from pipeline.stores.redis.live import RedisLive
from schemas.records import SENTIMENTS, Aggregate

MAX_WINDOW_MINUTES = 24 * 60
_WINDOW = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 24 * 60}


class QueryError(YuqingError):
    """A query asked for something invalid (its message says what is allowed)."""


def parse_window(text: str) -> int:
    """``5m``, ``1h`` or ``24h`` → minutes; from 1 minute to 24 hours."""
    match = _WINDOW.match(text)
    if not match:
        raise QueryError(f"window {text!r} is not like 5m, 1h or 24h")
    minutes = int(match.group(1)) * _UNIT_MINUTES[match.group(2)]
    if not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise QueryError(f"window {text!r} is outside 1m..24h")
    return minutes


def _row(subject: str, by_sentiment: dict[str, int]) -> dict[str, Any]:
    total = sum(by_sentiment.values())
    row: dict[str, Any] = {"subject": subject, "total": total}
    row.update({s: by_sentiment.get(s, 0) for s in SENTIMENTS})
    row["negative_share"] = _share(by_sentiment.get("negative", 0), total)
    return row


def _share(part: int, total: int) -> float:
    return round(part / total, 4) if total else 0.0


def _by_subject(counts: Counter[tuple[str, str, str]]) -> dict[str, dict[str, int]]:
    per_subject: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (subject, _platform, sentiment), count in counts.items():
        per_subject[subject][sentiment] += count
    return per_subject


def window_rows(live: RedisLive, minutes: int, subject: str | None = None) -> list[dict[str, Any]]:
    """Per-subject sentiment counts over the window, busiest first; ``*`` is every post once.

    The sentiment columns are raw counts; ``deduplicated`` counts each near-duplicate cluster once
    and leaves suspected bots out, and ``deduplicated_negative_share`` is the share alerts watch.
    """
    deduplicated = _by_subject(live.window_counts(minutes, subject, deduplicated=True))
    rows = []
    for name, counts in _by_subject(live.window_counts(minutes, subject)).items():
        kept = deduplicated.get(name, {})
        kept_total = sum(kept.values())
        row = _row(name, counts)
        row["deduplicated"] = kept_total
        row["deduplicated_negative_share"] = _share(kept.get("negative", 0), kept_total)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["subject"] != ALL_SUBJECTS, -r["total"], r["subject"]))


def history_rows(series: list[Aggregate]) -> list[dict[str, Any]]:
    """Minute series regrouped as one row per (minute, subject) with the sentiment split."""
    grouped: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for agg in series:
        grouped[(agg.minute.isoformat(), agg.subject)][agg.sentiment] += agg.count
    return [{"minute": minute, **_row(subject, counts)} for (minute, subject), counts in sorted(grouped.items())]
