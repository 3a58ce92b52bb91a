"""Every error the API answers is JSON ``{"error": reason}`` with a 4xx status for bad requests and
503 when a store is unreachable: bad input never becomes a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.domain.subjects import SubjectError
from pipeline.stores.query import QueryError
from pipeline.stores.redis.alerts import AlertNotFoundError
from pipeline.stores.sink import SinkError

log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raised by handlers and dependencies: answered as ``{"error": reason}`` with ``status``."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


def problem(status: int, reason: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=dict(headers or {}))


def describe_validation(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one line: ``query parameter 'limit': ...; body.name: ...``."""
    parts = []
    for item in errors:
        loc = [str(p) for p in item.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header") and len(loc) > 1:
            where = f"{loc[0]} parameter {loc[1]!r}"
        else:
            where = ".".join(loc) or "request"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _status_for_validation(errors: Sequence[Any]) -> int:
    # A malformed query or path parameter is a bad request (400); a body that parses but describes
    # something impossible is an unprocessable entity (422).
    return 422 if any(item.get("loc", ("",))[0] == "body" for item in errors) else 400


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.reason, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return problem(_status_for_validation(errors), describe_validation(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and reason == "Not Found":
            reason = "no such endpoint (see /api/v1/openapi.json)"
        return problem(exc.status_code, reason, exc.headers)

    @app.exception_handler(QueryError)
    async def _query(_request: Request, exc: QueryError) -> JSONResponse:
        return problem(400, str(exc))

    @app.exception_handler(SubjectError)
    async def _subject(_request: Request, exc: SubjectError) -> JSONResponse:
        return problem(422, str(exc))

    @app.exception_handler(AlertNotFoundError)
    async def _no_alert(_request: Request, exc: AlertNotFoundError) -> JSONResponse:
        return problem(404, str(exc))

    # A store being down is not the caller's fault, and not a bug either: 503, so clients retry.
    @app.exception_handler(redis.RedisError)
    async def _redis(_request: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("Redis failed while answering: %s", exc)
        return problem(503, "the live store (Redis) is unavailable; try again")

    @app.exception_handler(SinkError)
    async def _history(_request: Request, exc: SinkError) -> JSONResponse:
        log.warning("ClickHouse failed while answering: %s", exc)
        return problem(503, "the history store (ClickHouse) is unavailable; try again")
