"""``/metrics`` and per-route request metrics for a FastAPI app (the API and ingest).

``/metrics`` needs no token, like ``/healthz``: it holds counts and timings labelled by route template,
stage and reason category, never a post, an author, a token or a URL's query. Where it must not be
public, keep the port internal (the network policy or the proxy's job, as for any scrape target).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.routing import Mount, Route

from pipeline.observability.metrics import HTTP_REQUESTS, HTTP_SECONDS, exposition

METRICS_PATH = "/metrics"


def route_label(route: object, path: str = "") -> str:
    """The route's template (``/api/v1/alerts/{alert_id}``), never the path itself: paths are unbounded."""
    if isinstance(route, Route):
        return _prefix(route, path) + route.path
    return "static" if isinstance(route, Mount) else "unmatched"


def _prefix(route: Route, path: str) -> str:
    """The prefix of the router ``route`` was included under: FastAPI may give the route with its own
    path alone. It is the part of ``path`` before the suffix the route matches, so it is the include's
    fixed prefix, not anything the client chose."""
    if route.path_regex.match(path):
        return ""
    for index, char in enumerate(path):
        if char == "/" and index and route.path_regex.match(path[index:]):
            return path[:index]
    return ""


def instrument(app: FastAPI, name: str) -> None:
    """Serve ``/metrics`` and time every request. Call it before a catch-all mount (the dashboard's)."""

    @app.get(METRICS_PATH, include_in_schema=False)
    def prometheus_metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = route_label(request.scope.get("route"), request.scope.get("path", ""))
            HTTP_REQUESTS.labels(app=name, route=route, method=request.method, status=str(status)).inc()
            HTTP_SECONDS.labels(app=name, route=route, method=request.method).observe(time.perf_counter() - started)
