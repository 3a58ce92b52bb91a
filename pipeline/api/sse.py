"""``GET /api/v1/stream``: server-sent events fed by Redis pub/sub, so a dashboard updates live.

Events: ``hello`` once subscribed, ``live`` after each flush of the Redis sink (``{"counted": n,
"minutes": [...]}``), ``alert`` with an alert's JSON each time one is opened, updated or resolved,
and ``heartbeat`` every ``heartbeat_s`` so proxies keep the connection and clients notice a dead one.
Each stream holds its own pub/sub connection; their number is capped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from pipeline.api.auth import ReadAccess
from pipeline.api.errors import ApiProblem
from pipeline.api.state import ApiState

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])
MAX_STREAMS = 64
POLL_S = 1.0  # how often a quiet stream checks whether the server is stopping


class StreamLimiter:
    """Counts open streams (handlers run on one loop, the lock is for the thread that stops us)."""

    def __init__(self, limit: int, heartbeat_s: float) -> None:
        self.limit = limit
        self.heartbeat_s = heartbeat_s
        self.open = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def enter(self) -> None:
        with self._lock:
            self.open += 1

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


def _event(name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


async def _events(state: ApiState, limiter: StreamLimiter) -> AsyncIterator[bytes]:
    client = aioredis.Redis.from_url(state.settings.redis_url.get_secret_value(), decode_responses=True)
    pubsub = client.pubsub()
    limiter.enter()  # counted here, not in the handler, so the finally below always balances it
    channels = {state.keys.live_channel: "live", state.keys.alert_channel: "alert"}
    try:
        await pubsub.subscribe(*channels)
        yield b"retry: 3000\n\n" + _event("hello", json.dumps({"channels": list(channels.values())}))
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + limiter.heartbeat_s
        while not limiter.stopping.is_set():
            wait = max(0.0, min(POLL_S, next_beat - loop.time()))
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is not None and message.get("type") == "message":
                yield _event(channels.get(message["channel"], "live"), str(message["data"]))
            if loop.time() >= next_beat:
                yield _event("heartbeat", json.dumps({"at": datetime.now(UTC).isoformat()}))
                next_beat = loop.time() + limiter.heartbeat_s
    finally:
        limiter.leave()
        try:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
        except Exception as exc:  # the connection may already be gone: nothing left to clean
            log.debug("closing a stream's pub/sub connection: %s", exc)


@router.get(
    "/stream",
    summary="Live updates (server-sent events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "hello, live, alert and heartbeat events"}},
)
async def stream(request: Request, _who: ReadAccess) -> StreamingResponse:
    """Send the token in the Authorization header (read it with fetch, not EventSource)."""
    state: ApiState = request.app.state.api
    limiter: StreamLimiter = request.app.state.streams
    if limiter.full:
        raise ApiProblem(503, f"too many live streams open ({limiter.limit}); try again later")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(state, limiter), media_type="text/event-stream", headers=headers)
