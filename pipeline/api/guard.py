"""Writes are judged before their body is read: a request that may not write is answered at once, and a
body over the cap is refused (413) as soon as its size is known, so no caller can make the API buffer or
parse what it will throw away. Reads carry no body and pass through."""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.api.auth import TokenTable, admit_admin, identify
from pipeline.api.errors import ApiProblem
from pipeline.api.models import Problem

# The largest write the API takes (a subject definition is a few KB).
MAX_BODY_BYTES = 64 * 1024
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What the guard answers on a write route besides the 401 and 403 of ERROR_RESPONSES, for the description.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": f"The request body is over {MAX_BODY_BYTES} bytes."},
}


class WriteGuard:
    """ASGI middleware in front of ``router``'s write routes (other requests get the router's own 404 or 405)."""

    def __init__(self, app: ASGIApp, tokens: TokenTable, router: Router, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.tokens, self.router, self.max_body = app, tokens, router, max_body

    def _is_write(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            return False
        # Not the dashboard's static mount at /: it matches every path and method.
        return any(not isinstance(r, Mount) and r.matches(scope)[0] == Match.FULL for r in self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._is_write(scope):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self._refusal(headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        received, refused = 0, False

        async def capped() -> Message:
            # A body without Content-Length is counted as it streams in; past the cap the caller gets its
            # 413 at once and the app is told the client left, so it stops reading.
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body and not refused:
                refused = True
                await _answer(send, 413, f"request body over {self.max_body} bytes")
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, capped, unless_refused)

    def _refusal(self, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        """The answer for a write that may not proceed, judged by the same rules as the routes' own checks."""
        try:
            admit_admin(identify(headers.get("authorization"), self.tokens))
        except ApiProblem as problem:
            return problem.status, problem.reason, problem.headers
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return 413, f"request body over {self.max_body} bytes", {}
        return None


async def _answer(send: Send, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": reason}).encode()
    extra: list[Any] = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
