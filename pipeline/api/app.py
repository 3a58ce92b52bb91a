"""``create_app(settings)``: the FastAPI application, its routers under ``/api/v1`` and the dashboard.

Routes (OpenAPI at ``/api/v1/openapi.json``; no Swagger page, it would load scripts from a CDN):
``/healthz``; ``/api/v1/`` session, aggregates, series, top-subjects, hot-words (live, Redis),
history/series, history/hot-words, posts (ClickHouse), alerts, subjects, stream (SSE); ``/`` the
dashboard built into ``pipeline/api/dashboard/dist`` (``make dashboard``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from pipeline.api import routes_alerts, routes_history, routes_live, routes_subjects, sse
from pipeline.api.auth import Caller, ReadAccess, Scope, TokenTable
from pipeline.api.errors import install_handlers
from pipeline.api.guard import WriteGuard
from pipeline.api.models import ERROR_RESPONSES, CallerInfo, Health
from pipeline.api.params import strict_query
from pipeline.api.state import ApiState
from pipeline.observability.http import instrument
from pipeline.settings import Settings

DASHBOARD_DIST = Path(__file__).resolve().parent / "dashboard" / "dist"
API_PREFIX = "/api/v1"
# The dashboard loads nothing from anywhere else; uPlot sets element styles from script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def create_app(settings: Settings, *, heartbeat_s: float = 15.0, dashboard_dir: Path | None = None) -> FastAPI:
    """The API over ``settings``' Redis and ClickHouse; raises ApiError for bad token configuration."""
    tokens = TokenTable.parse(settings.api_tokens.get_secret_value())
    state = ApiState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="yuqing API",
        version="1",
        summary="Live and historical public-opinion counts, alerts and monitored subjects.",
        description=(
            "Send `Authorization: Bearer <token>`. Tokens (YUQING_API_TOKENS) have the read scope (every GET) "
            "or the admin scope (also acknowledging alerts and editing subjects). With no tokens configured, "
            'reading needs no token and nothing can be changed. Errors are `{"error": reason}`.'
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.api = state
    app.state.tokens = tokens
    app.state.streams = sse.StreamLimiter(sse.MAX_STREAMS, heartbeat_s)
    install_handlers(app)
    _add_cors(app, settings.api_cors_origins)
    _add_security_headers(app)
    app.add_middleware(WriteGuard, tokens=tokens, router=app.router)

    strict = [Depends(strict_query)]
    for module in (routes_live, routes_history, routes_alerts, routes_subjects, sse):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=strict, responses=ERROR_RESPONSES)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "Redis is unreachable."}},
        tags=["meta"],
        summary="Liveness (no token needed)",
    )
    async def healthz() -> JSONResponse:
        # Off the request thread pool, which slow history queries may fill: liveness must not wait on them.
        try:
            redis_ok = bool(await asyncio.to_thread(state.client.ping))
        except Exception:  # any failure to reach Redis means unhealthy, whatever its type
            redis_ok = False
        body = Health(status="ok" if redis_ok else "unhealthy", redis=redis_ok)
        return JSONResponse(body.model_dump(), status_code=200 if redis_ok else 503)

    @app.get(
        f"{API_PREFIX}/session",
        response_model=CallerInfo,
        tags=["meta"],
        dependencies=strict,
        responses=ERROR_RESPONSES,
    )
    def session(who: ReadAccess) -> CallerInfo:
        """The caller's scope, so a client knows whether to offer acknowledging and editing."""
        return _caller_info(who, settings)

    instrument(app, "api")
    _mount_dashboard(app, dashboard_dir or DASHBOARD_DIST)
    return app


def _caller_info(who: Caller, settings: Settings) -> CallerInfo:
    scope = "admin" if who.scope >= Scope.ADMIN else "read"
    return CallerInfo(scope=scope, anonymous=who.anonymous, dashboard_url=settings.dashboard_url)


def _add_cors(app: FastAPI, origins: str) -> None:
    allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
    if not allowed:
        return  # off: browsers refuse cross-site calls
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )


def _add_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response


def _mount_dashboard(app: FastAPI, dist: Path) -> None:
    index = dist / "index.html"
    if not index.is_file():

        @app.get("/", include_in_schema=False)
        def not_built() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>yuqing</title><p>The dashboard is not built: run <code>make dashboard</code>."
                f" The API is at <a href='{API_PREFIX}/openapi.json'>{API_PREFIX}/openapi.json</a>.</p>",
                status_code=503,
            )

        return

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    # Hashed asset names (vite): cacheable; anything else under / is a 404 from StaticFiles.
    app.mount("/", StaticFiles(directory=dist), name="dashboard")
