"""``GET /api/v1/stream``: server-sent events fed by Redis pub/sub, so a dashboard updates live.

Events: ``hello`` once subscribed, ``live`` after each flush of the Redis sink (``{"counted": n,
"minutes": [...]}``), ``alert`` with an alert's JSON each time one is opened, updated or resolved,
and ``heartbeat`` every ``heartbeat_s`` so proxies keep the connection and clients notice a dead one.
Each stream holds its own pub/sub connection; their number is capped in total and per caller (a token,
or an address where no tokens are configured), reserved before the answer starts so a burst of
requests cannot slip past the count.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from pipeline.api.auth import ReadAccess
from pipeline.api.errors import ApiProblem
from pipeline.api.state import ApiState

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])
MAX_STREAMS = 64
MAX_STREAMS_PER_CALLER = 8
POLL_S = 1.0  # how often a quiet stream checks whether the server is stopping


class StreamLimiter:
    """Open streams, in total and per caller. The lock makes check-and-count one step: handlers run on the
    event loop, the server's stop comes from another thread."""

    def __init__(self, limit: int, heartbeat_s: float, per_caller: int = MAX_STREAMS_PER_CALLER) -> None:
        self.limit, self.per_caller = limit, per_caller
        self.heartbeat_s = heartbeat_s
        self.open: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def reserve(self, caller: str) -> Callable[[], None] | None:
        """A slot for ``caller``, as the function that frees it (safe to call twice), or None when full."""
        with self._lock:
            if self.open.total() >= self.limit or self.open[caller] >= self.per_caller:
                return None
            self.open[caller] += 1
        freed = threading.Event()

        def free() -> None:
            with self._lock:
                if not freed.is_set():
                    freed.set()
                    self.open[caller] -= 1

        return free


def caller_key(request: Request) -> str:
    """Whom a stream counts against: a digest of the presented token, else the client's address."""
    header = request.headers.get("authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode()).hexdigest()[:16]
    return f"address:{request.client.host if request.client else '?'}"


def _event(name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


async def _events(state: ApiState, limiter: StreamLimiter, free: Callable[[], None]) -> AsyncIterator[bytes]:
    client = aioredis.Redis.from_url(state.settings.redis_url.get_secret_value(), decode_responses=True)
    pubsub = client.pubsub()
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
        free()
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
    free = limiter.reserve(caller_key(request))
    if free is None:
        raise ApiProblem(
            503,
            f"too many live streams open (at most {limiter.per_caller} per caller, {limiter.limit} in all); "
            "try again later",
        )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    # Freed by the stream's end, or by the background task where the stream never started (a client gone).
    return StreamingResponse(
        _events(state, limiter, free), media_type="text/event-stream", headers=headers, background=BackgroundTask(free)
    )
