"""Live answers from Redis: rolling aggregates, the minute series, top subjects and hot words.

Windows run from 1 minute to 24 hours and end with the current, still filling minute.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from pipeline.api.auth import ReadAccess
from pipeline.api.models import (
    Aggregates,
    Counts,
    EmergingTerm,
    HotWords,
    PlatformAggregate,
    Series,
    SeriesPoint,
    SubjectAggregate,
    SubjectCount,
    TermCount,
    TopSubjects,
)
from pipeline.api.params import Platform, SubjectName, TopN, Window, window
from pipeline.api.state import api_state
from pipeline.stores.redis.keys import ALL_SUBJECTS

router = APIRouter(tags=["live"])
WindowDep = Annotated[Window, Depends(window)]

# counts[subject][platform][sentiment]
Nested = dict[str, dict[str, Counter[str]]]


def _nest(counts: Counter[tuple[str, str, str]], platform: str | None) -> Nested:
    nested: Nested = defaultdict(lambda: defaultdict(Counter))
    for (subject, plat, sentiment), n in counts.items():
        if platform is None or plat == platform:
            nested[subject][plat][sentiment] += n
    return nested


def _sum(platforms: dict[str, Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in platforms.values():
        total.update(counts)
    return total


@router.get("/aggregates", response_model=Aggregates, summary="Rolling counts by subject, platform and sentiment")
def aggregates(
    request: Request,
    _who: ReadAccess,
    win: WindowDep,
    subject: SubjectName | None = None,
    platform: Platform = None,
) -> Aggregates:
    """Posts per subject over the window, split by platform and sentiment, raw and deduplicated,
    each with its negative share. A known subject without posts in the window gives zeros."""
    state = api_state(request)
    if subject is not None:
        state.require_subject(subject)
    raw = _nest(state.live.window_counts(win.minutes, subject), platform)
    kept = _nest(state.live.window_counts(win.minutes, subject, deduplicated=True), platform)
    names = set(raw) | ({subject} if subject else set())
    rows = []
    for name in names:
        platforms = sorted(set(raw.get(name, {})) | set(kept.get(name, {})))
        rows.append(
            SubjectAggregate(
                subject=name,
                raw=Counts.of(_sum(raw.get(name, {}))),
                deduplicated=Counts.of(_sum(kept.get(name, {}))),
                platforms=[
                    PlatformAggregate(
                        platform=p,
                        raw=Counts.of(raw.get(name, {}).get(p, Counter())),
                        deduplicated=Counts.of(kept.get(name, {}).get(p, Counter())),
                    )
                    for p in platforms
                ],
            )
        )
    rows.sort(key=lambda r: (r.subject != ALL_SUBJECTS, -r.raw.total, r.subject))
    return Aggregates(window=win.text, minutes=win.minutes, generated_at=datetime.now(UTC), subjects=rows)


@router.get("/series", response_model=Series, summary="Per-minute counts of one subject")
def series(request: Request, _who: ReadAccess, win: WindowDep, subject: SubjectName = ALL_SUBJECTS) -> Series:
    state = api_state(request)
    state.require_subject(subject)
    now = datetime.now(UTC)
    raw = state.live.series(win.minutes, subject, now)
    kept = state.live.series(win.minutes, subject, now, deduplicated=True)
    points = []
    for (minute, raw_counts), (_same, kept_counts) in zip(raw, kept, strict=True):
        by_sentiment_raw: Counter[str] = Counter()
        by_sentiment_kept: Counter[str] = Counter()
        for (_platform, sentiment), n in raw_counts.items():
            by_sentiment_raw[sentiment] += n
        for (_platform, sentiment), n in kept_counts.items():
            by_sentiment_kept[sentiment] += n
        points.append(
            SeriesPoint(minute=minute, raw=Counts.of(by_sentiment_raw), deduplicated=Counts.of(by_sentiment_kept))
        )
    return Series(subject=subject, window=win.text, minutes=win.minutes, points=points)


@router.get("/top-subjects", response_model=TopSubjects, summary="Subjects with the most posts")
def top_subjects(request: Request, _who: ReadAccess, win: WindowDep, n: TopN = 10) -> TopSubjects:
    rows = api_state(request).live.top_subjects(win.minutes, n)
    return TopSubjects(window=win.text, subjects=[SubjectCount(subject=s, posts=c) for s, c in rows])


@router.get("/hot-words", response_model=HotWords, summary="A subject's most used and emerging terms")
def hot_words(
    request: Request, _who: ReadAccess, win: WindowDep, subject: SubjectName = ALL_SUBJECTS, n: TopN = 20
) -> HotWords:
    """Terms of deduplicated posts over the window; ``emerging`` compares the last two minutes
    with the 30 before them."""
    state = api_state(request)
    state.require_subject(subject)
    words = state.live.hot_words(subject, win.minutes, n)
    emerging = state.live.emerging_words(subject)[:n]
    return HotWords(
        subject=subject,
        window=win.text,
        words=[TermCount(term=t, posts=c) for t, c in words],
        emerging=[EmergingTerm(term=t, score=round(float(z), 2)) for t, z in emerging],
    )
