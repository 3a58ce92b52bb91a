"""HTTP push ingestion: POST one post (JSON) or a batch (NDJSON) to /posts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from pipeline.ingest.producer import Ingestor
from pipeline.kafka import BrokerError
from schemas.records import Post

MAX_BODY_BYTES = 16 * 1024 * 1024
INGESTOR = web.AppKey("ingestor", Ingestor)


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """One record for a JSON body, one per non-blank line for NDJSON (or any multi-line body)."""
    if content_type == "application/json":
        return [body]
    return [line for line in body.splitlines() if line.strip()]


async def post_posts(request: web.Request) -> web.Response:
    ingestor = request.app[INGESTOR]
    records = split_body(await request.read(), request.content_type)
    results = [ingestor.submit(record) for record in records]
    try:
        # Answer only once the broker holds every record: a 200 means nothing can be lost.
        await asyncio.get_running_loop().run_in_executor(None, ingestor.flush)
    except BrokerError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    body: dict[str, Any] = {
        "accepted": sum(isinstance(r, Post) for r in results),
        "rejected": [{"index": i, "reason": r.reason} for i, r in enumerate(results) if not isinstance(r, Post)],
    }
    return web.json_response(body, status=200 if not body["rejected"] else 207, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[INGESTOR].stats.as_dict())


def make_app(ingestor: Ingestor) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[INGESTOR] = ingestor
    app.router.add_post("/posts", post_posts)
    app.router.add_get("/health", health)
    return app


def serve(ingestor: Ingestor, host: str, port: int) -> None:
    web.run_app(make_app(ingestor), host=host, port=port, print=None)
