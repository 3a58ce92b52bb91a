"""Every query and path parameter the API takes, with its checks, declared once.

Each check happens before any store is asked: a value that fails one is answered with 400 and
the reason, and what reaches Redis or ClickHouse is a checked value passed as a bound parameter.
Unknown or repeated query parameters are refused too, so a typo never silently means "all".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from pipeline.api.errors import ApiProblem
from pipeline.stores.query import parse_window

MAX_LIMIT = 500
MAX_OFFSET = 100_000
MAX_HISTORY = timedelta(days=7)
_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"

SubjectName = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        pattern=_NO_CONTROL,
        description="A subject: `*` (every post once), a monitored subject, or a hashtag subject with recent posts.",
    ),
]
SubjectPath = Annotated[str, Path(min_length=1, max_length=64, pattern=_NO_CONTROL, description="A subject name.")]
Platform = Annotated[
    str | None,
    Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Only posts from this platform, e.g. weibo."),
]
SentimentParam = Annotated[
    Literal["negative", "neutral", "positive", "unknown"] | None, Query(description="Only posts of this sentiment.")
]
AlertState = Annotated[Literal["opened", "updated", "resolved"] | None, Query(description="Only alerts in this state.")]
AlertId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip, at most {MAX_OFFSET}.")]
TopN = Annotated[int, Query(ge=1, le=100, description="How many to return, at most 100.")]
ModelVersion = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:+-]+$",
        description="Counts and posts of this model version; left out, the serving model's.",
    ),
]
Deduplicated = Annotated[
    bool, Query(description="Count each near-duplicate cluster once and leave suspected bots out.")
]
TimeText = Annotated[
    str | None, Query(min_length=4, max_length=40, description="An ISO 8601 time; without a zone it is UTC.")
]
WindowText = Annotated[str, Query(min_length=2, max_length=6, description="A rolling window from 1m to 24h: 5m, 1h.")]


@dataclass(frozen=True)
class Window:
    text: str
    minutes: int


def window(window: WindowText = "5m") -> Window:
    """The ``window`` query parameter as minutes (1m..24h); a QueryError (400) says what is allowed."""
    return Window(window, parse_window(window))


def parse_time(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiProblem(400, f"query parameter {name!r}: {text!r} is not an ISO 8601 time") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not 2000 <= moment.year <= 2100:
        raise ApiProblem(400, f"query parameter {name!r}: {text!r} is outside the years 2000-2100")
    return moment


@dataclass(frozen=True)
class TimeRange:
    since: datetime
    until: datetime


def time_range(since: TimeText = None, until: TimeText = None, minute: TimeText = None) -> TimeRange:
    """``minute`` (one whole minute: the drill-down from a chart point) or ``since``/``until``
    (default: the last hour), at most seven days long."""
    if minute is not None:
        if since is not None or until is not None:
            raise ApiProblem(400, "give either minute or since/until, not both")
        start = parse_time("minute", minute).replace(second=0, microsecond=0)
        return TimeRange(start, start + timedelta(minutes=1))
    end = parse_time("until", until) if until else datetime.now(UTC)
    start = parse_time("since", since) if since else end - timedelta(hours=1)
    if start >= end:
        raise ApiProblem(400, "since must be before until")
    if end - start > MAX_HISTORY:
        raise ApiProblem(400, f"since..until spans more than {MAX_HISTORY.days} days")
    return TimeRange(start, end)


def _declared(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared(sub)
    return names


_ALLOWED: dict[int, frozenset[str]] = {}  # by id(route): routes are not hashable, and live as long as their app


def _allowed_for(route: APIRoute) -> frozenset[str]:
    allowed = _ALLOWED.get(id(route))
    if allowed is None:
        allowed = _ALLOWED[id(route)] = frozenset(_declared(route.dependant))
    return allowed


def strict_query(request: Request) -> None:
    """Refuse query parameters the endpoint does not take, and any given twice."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _allowed_for(route)
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiProblem(400, f"unknown query parameter {name[:40]!r}; this endpoint takes: {known}")
        if name in seen:
            raise ApiProblem(400, f"query parameter {name!r} is given more than once")
        seen.add(name)
