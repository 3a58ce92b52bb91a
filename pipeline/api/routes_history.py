"""History from ClickHouse: minute series over any range up to seven days, and the posts behind a
number (paged, with each post's near-duplicate cluster and bot flags)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from pipeline.api.auth import ReadAccess
from pipeline.api.models import History, HistoryRow, HotWords, PostRow, Posts, TermCount
from pipeline.api.params import (
    Deduplicated,
    Limit,
    ModelVersion,
    Offset,
    Platform,
    SentimentParam,
    SubjectName,
    TimeRange,
    TopN,
    time_range,
)
from pipeline.api.state import api_state
from pipeline.stores.clickhouse.history import ClickHouseHistory
from pipeline.stores.redis.keys import ALL_SUBJECTS
from schemas.records import Aggregate

router = APIRouter(tags=["history"])
RangeDep = Annotated[TimeRange, Depends(time_range)]


def _stored(subject: str) -> str | None:
    # ClickHouse keeps no "*" rows: every post once is "no subject filter" there.
    return None if subject == ALL_SUBJECTS else subject


@router.get("/history/series", response_model=History, summary="Minute counts from ClickHouse")
def history_series(
    request: Request,
    _who: ReadAccess,
    span: RangeDep,
    subject: SubjectName | None = None,
    deduplicated: Deduplicated = False,
    model_version: ModelVersion = None,
) -> History:
    """Posts per (minute, subject, platform, sentiment) with ``since <= minute < until``; leave the
    subject out for every subject (a post with two subjects is in both). Counts are of one model
    version: ``model_version``, or the serving model's."""
    state = api_state(request)
    name = None if subject is None else _stored(state.require_subject(subject))

    def read(h: ClickHouseHistory) -> tuple[str, list[Aggregate]]:
        version = h.serving_version() if model_version is None else model_version
        return version, h.minute_series(span.since, span.until, name, deduplicated=deduplicated, model_version=version)

    version, rows = state.history(read)
    return History(
        since=span.since,
        until=span.until,
        subject=name,
        deduplicated=deduplicated,
        model_version=version,
        rows=[
            HistoryRow(**row.model_dump(include={"minute", "subject", "platform", "sentiment", "count"}))
            for row in rows
        ],
    )


@router.get("/history/hot-words", response_model=HotWords, summary="Hot words from ClickHouse")
def history_hot_words(
    request: Request,
    _who: ReadAccess,
    span: RangeDep,
    subject: SubjectName = ALL_SUBJECTS,
    n: TopN = 20,
    model_version: ModelVersion = None,
) -> HotWords:
    state = api_state(request)
    name = _stored(state.require_subject(subject))
    words = state.history(lambda h: h.hot_words(name, span.since, span.until, n, model_version=model_version))
    label = f"{span.since.isoformat()}..{span.until.isoformat()}"
    return HotWords(subject=subject, window=label, words=[TermCount(term=t, posts=c) for t, c in words], emerging=[])


@router.get("/posts", response_model=Posts, summary="The posts behind a number")
def posts(
    request: Request,
    _who: ReadAccess,
    span: RangeDep,
    subject: SubjectName = ALL_SUBJECTS,
    sentiment: SentimentParam = None,
    platform: Platform = None,
    deduplicated: Deduplicated = False,
    limit: Limit = 50,
    offset: Offset = 0,
    model_version: ModelVersion = None,
) -> Posts:
    """Scored posts newest first, one page at a time; ``minute`` selects the posts of one chart
    point. Each post carries its cluster id and its duplicate and suspected-bot flags."""
    state = api_state(request)
    name = _stored(state.require_subject(subject))
    # One row more than asked tells whether there is a next page without a count query.
    rows = state.history(
        lambda h: h.posts(
            span.since,
            span.until,
            name,
            sentiment=sentiment,
            platform=platform,
            deduplicated=deduplicated,
            limit=limit + 1,
            offset=offset,
            model_version=model_version,
        )
    )
    return Posts(
        subject=subject,
        since=span.since,
        until=span.until,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
        posts=[PostRow(**row) for row in rows[:limit]],
    )
