"""The API's response and request bodies (they make the OpenAPI description)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.records import SENTIMENTS, Alert


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SentimentCounts(Out):
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    unknown: int = 0

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> SentimentCounts:
        return cls(**{s: int(counts.get(s, 0)) for s in SENTIMENTS})

    @property
    def total(self) -> int:
        return self.negative + self.neutral + self.positive + self.unknown


def share(part: int, total: int) -> float:
    return round(part / total, 4) if total else 0.0


class Counts(Out):
    """Posts by sentiment, their total and the negative share (0 when there are none)."""

    total: int
    sentiments: SentimentCounts
    negative_share: float

    @classmethod
    def of(cls, counts: Mapping[str, int] | Counter[str]) -> Counts:
        sentiments = SentimentCounts.of(counts)
        return cls(
            total=sentiments.total, sentiments=sentiments, negative_share=share(sentiments.negative, sentiments.total)
        )


class PlatformAggregate(Out):
    platform: str
    raw: Counts
    deduplicated: Counts


class SubjectAggregate(Out):
    subject: str
    raw: Counts = Field(description="Every post.")
    deduplicated: Counts = Field(description="Each near-duplicate cluster once, suspected bots left out.")
    platforms: list[PlatformAggregate]


class Aggregates(Out):
    window: str
    minutes: int
    generated_at: datetime
    subjects: list[SubjectAggregate] = Field(description="`*` (every post once) first, then busiest first.")


class SeriesPoint(Out):
    minute: datetime
    raw: Counts
    deduplicated: Counts


class Series(Out):
    subject: str
    window: str
    minutes: int
    points: list[SeriesPoint] = Field(description="Oldest first; the last is the current, still filling minute.")


class SubjectCount(Out):
    subject: str
    posts: int


class TopSubjects(Out):
    window: str
    subjects: list[SubjectCount]


class TermCount(Out):
    term: str
    posts: int


class EmergingTerm(Out):
    term: str
    score: float


class HotWords(Out):
    subject: str
    window: str
    words: list[TermCount]
    emerging: list[EmergingTerm] = Field(description="Terms of the last two minutes rising against the 30 before.")


class HistoryRow(Out):
    minute: datetime
    subject: str
    platform: str
    sentiment: str
    count: int


class History(Out):
    since: datetime
    until: datetime
    subject: str | None
    deduplicated: bool
    model_version: str
    rows: list[HistoryRow]


class PostRow(Out):
    post_id: str
    platform: str
    author_id: str
    text: str
    event_time: datetime
    subjects: list[str]
    sentiment: str
    p_negative: float
    p_neutral: float
    p_positive: float
    likes: int
    reposts: int
    comments: int
    cluster_id: str = Field(description="The first post of its near-duplicate cluster (its own id if none).")
    is_duplicate: bool
    suspected_bot: bool
    noise_reasons: list[str]
    detected_lang: str
    url: str


class Page(Out):
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class Posts(Page):
    subject: str
    since: datetime
    until: datetime
    posts: list[PostRow]


class Alerts(Page):
    alerts: list[Alert]


class AlertDetail(Out):
    alert: Alert
    deliveries: list[dict[str, Any]]
    dashboard_url: str


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field("api", min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$", description="Who saw it.")


class CallerInfo(Out):
    scope: Literal["read", "admin"]
    anonymous: bool = Field(description="True when no tokens are configured and none was sent.")
    dashboard_url: str


class Problem(Out):
    """Every error: a 4xx for a bad request, 503 when a store is unreachable."""

    error: str = Field(description="What was wrong, in a sentence.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "A query or path parameter is invalid (the reason says which)."},
    401: {"model": Problem, "description": "The token is missing, malformed or unknown."},
    403: {"model": Problem, "description": "The token's scope is not enough (admin needed)."},
    404: {"model": Problem, "description": "No such subject, alert or endpoint."},
    422: {"model": Problem, "description": "The request body is invalid."},
    503: {"model": Problem, "description": "Redis or ClickHouse is unreachable; try again."},
}


class Health(Out):
    status: Literal["ok", "unhealthy"]
    redis: bool
