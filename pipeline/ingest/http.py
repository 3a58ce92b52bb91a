"""HTTP push ingestion: POST one post (JSON) or a batch (NDJSON) to /posts.

A FastAPI router, so ingest shares the API's HTTP stack; ``yuqing ingest --http`` serves it as its own
process (``make_app``), where it scales and fails apart from the query API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pipeline.domain.access import is_loopback, parse_tokens, token_allowed
from pipeline.errors import YuqingError
from pipeline.ingest.producer import Ingestor
from pipeline.observability.http import instrument

MAX_BODY_BYTES = 16 * 1024 * 1024

router = APIRouter()


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """One record for a JSON body, one per non-blank line for NDJSON (or any multi-line body)."""
    if content_type == "application/json":
        return [body]
    return [line for line in body.splitlines() if line.strip()]


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingestor
    return ingestor


# Seconds a client should wait before retrying a request the broker did not take.
RETRY_AFTER_S = 5


class RecordFate(BaseModel):
    index: int = Field(description="The record's position in the body (0 for a JSON body, the line's for NDJSON).")
    reason: str


class PushResult(BaseModel):
    accepted: int = Field(description="Records stored in posts.raw.")
    duplicates: list[int] = Field(description="Indices of records whose post id was stored before (not sent again).")
    rejected: list[RecordFate] = Field(description="Invalid records, sent to posts.dlq with their reason.")


class Unstored(PushResult):
    error: str
    failed: list[RecordFate] = Field(description="Records the broker did not store: send them again.")


class Refused(BaseModel):
    error: str


class TooLarge(BaseModel):
    detail: str


# What the handler answers, declared for the OpenAPI description: it reads the body itself.
POSTS_BODY: dict[str, Any] = {
    "description": "One post as a JSON object, or many as NDJSON (one JSON object a line); each is validated apart.",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}
POSTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PushResult, "description": "Every record stored (or stored before: a duplicate)."},
    207: {"model": PushResult, "description": "Stored, except the rejected records."},
    401: {"model": Refused, "description": "Ingest tokens are configured and the request carries none of them."},
    413: {"model": TooLarge, "description": f"The body is over {MAX_BODY_BYTES} bytes."},
    503: {"model": Unstored, "description": "The broker did not store some records: retry them."},
}


@router.post("/posts", response_model=None, responses=POSTS_RESPONSES, openapi_extra={"requestBody": POSTS_BODY})
async def post_posts(request: Request) -> JSONResponse:
    ingestor = _ingestor(request)
    tokens: tuple[bytes, ...] = request.app.state.tokens
    if tokens and not token_allowed(request.headers.get("authorization"), tokens):  # judged before the body
        return JSONResponse(
            {"error": "send Authorization: Bearer <ingest token>"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="yuqing-ingest"'},
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    records = split_body(await read_capped(request), content_type)
    # Validation and the wait for the broker run in a thread: the event loop keeps serving /health.
    delivery = await asyncio.get_running_loop().run_in_executor(None, ingestor.ingest, records)
    body: dict[str, Any] = {
        "accepted": len(delivery.accepted),
        "duplicates": delivery.duplicates,
        "rejected": [{"index": i, "reason": reason} for i, reason in delivery.rejected],
    }
    if delivery.failed:
        # Only a 200 or 207 means stored; the retried records that were stored meanwhile come back as duplicates.
        body |= {"error": f"the broker did not store {len(delivery.failed)} records: retry them"}
        body["failed"] = [{"index": i, "reason": reason} for i, reason in delivery.failed]
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
    return JSONResponse(body, status_code=207 if delivery.rejected else 200)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return _ingestor(request).stats.as_dict()


def make_app(ingestor: Ingestor) -> FastAPI:
    app = FastAPI(title="yuqing ingest", docs_url=None, redoc_url=None)
    app.state.ingestor = ingestor
    app.state.tokens = parse_tokens(ingestor.settings.ingest_tokens.get_secret_value())
    app.include_router(router)
    instrument(app, "ingest")
    return app


class IngestAccessError(YuqingError):
    """Ingest would listen where anyone could write, without tokens."""


def serve(ingestor: Ingestor, host: str, port: int) -> None:
    if not is_loopback(host) and not parse_tokens(ingestor.settings.ingest_tokens.get_secret_value()):
        raise IngestAccessError(f"refusing to take posts on {host} without tokens: set YUQING_INGEST_TOKENS")
    # log_config=None: uvicorn's loggers propagate to the process's handlers (format, redaction).
    uvicorn.run(make_app(ingestor), host=host, port=port, log_level="warning", log_config=None)
