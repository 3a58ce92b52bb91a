"""The HTTP query API (``yuqing api``) and the live dashboard it serves at ``/``.

- ``app.create_app(settings)``: the FastAPI application (OpenAPI at ``/api/v1/openapi.json``);
- ``server.ApiServer``: runs it with uvicorn in the foreground or in a background thread, so a
  process that owns a chDB folder (the demo's worker) can serve the API itself;
- ``auth``: bearer tokens with read and admin scopes; ``params``: every query parameter's checks;
- ``routes_*``: the endpoints; ``sse``: live updates from Redis pub/sub as server-sent events.
"""

from pipeline.errors import YuqingError


class ApiError(YuqingError):
    """The API cannot start: bad token configuration, a port in use, a missing dashboard build."""
