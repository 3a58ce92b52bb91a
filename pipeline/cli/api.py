"""``yuqing api``: the HTTP API and the live dashboard, in the foreground."""

from __future__ import annotations

import click

from pipeline.settings import get_settings


@click.command()
@click.option("--host", default=None, help="Listen address [default: YUQING_API_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default: YUQING_API_PORT, 8300].")
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
def api(host: str | None, port: int | None, log_level: str) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) and the dashboard (/).

    Tokens: YUQING_API_TOKENS=token:read,token2:admin. Without tokens anyone may read and nobody
    may change anything. With a chdb:// history store, run this only where no worker holds the
    folder (the demo serves the API from inside its worker instead).
    """
    from pipeline.api.server import ApiServer
    from pipeline.logs import configure_logging

    settings = get_settings()
    configure_logging(settings, log_level)
    server = ApiServer(settings, host, port, log_level=log_level)
    click.echo(f"yuqing API and dashboard on {server.url}/", err=True)
    server.serve_forever()
