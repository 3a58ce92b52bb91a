"""``ApiServer``: the API under uvicorn, in the foreground (``yuqing api``) or in a daemon thread.

The thread mode exists for chDB: only one process may open a chDB folder, so where a worker owns
the history store (the demo) the API must run inside that worker::

    server = ApiServer(settings)      # host and port default to YUQING_API_HOST / YUQING_API_PORT
    server.start()                    # returns once it listens; server.url is its address
    ...
    server.stop()

The thread has its own event loop and installs no signal handlers, so it never disturbs the host
process's loop (faust's) or its Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import uvicorn

from pipeline.api import ApiError
from pipeline.api.app import create_app
from pipeline.domain.access import is_loopback
from pipeline.settings import Settings

log = logging.getLogger(__name__)
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class ApiServer:
    def __init__(
        self,
        settings: Settings,
        host: str | None = None,
        port: int | None = None,
        *,
        heartbeat_s: float = 15.0,
        log_level: str = "warning",
    ) -> None:
        self.host = host if host is not None else settings.api_host
        if (
            not is_loopback(self.host)
            and not settings.api_tokens.get_secret_value()
            and not settings.api_anonymous_read
        ):
            raise ApiError(
                f"refusing to serve the API on {self.host} without tokens: set YUQING_API_TOKENS, or "
                "YUQING_API_ANONYMOUS_READ=true to let anyone who can reach it read"
            )
        self.app = create_app(settings, heartbeat_s=heartbeat_s)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=settings.api_port if port is None else port,
            log_level=log_level,
            access_log=log_level in ("debug", "info"),
            lifespan="on",
            # No logging config of uvicorn's own: inside a worker it must not touch the host's
            # logging; its loggers propagate to whatever the process set up (pipeline.logs.configure_logging).
            log_config=None,
            # Open live streams end within a second of stop() (they watch the stopping flag);
            # this bounds the wait for anything else still running.
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when 0 was asked for)."""
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        """Run in this thread until Ctrl-C or SIGTERM (``yuqing api``)."""
        with contextlib.suppress(SystemExit):  # uvicorn exits this way when it cannot bind
            self._server.run()
        if not self._server.started:
            raise ApiError(f"the API could not listen on {self.host}:{self._server.config.port} (see the log above)")

    def start(self) -> None:
        """Serve from a daemon thread; returns once it listens, raises ApiError if it cannot."""
        if self._thread is not None:
            raise ApiError("this ApiServer was already started")
        self._thread = threading.Thread(target=self._run, name="yuqing-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                self.app.state.api.close()  # the lifespan that would close it never ran
                raise ApiError(f"the API could not listen on {self.host}:{self._server.config.port}: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise ApiError(f"the API did not start within {START_TIMEOUT_S:.0f}s")
            time.sleep(0.02)
        log.info("yuqing API listening on %s", self.url)

    def _run(self) -> None:
        try:
            # A fresh loop of this thread's own; Server.serve (not run) installs no signal handlers.
            asyncio.run(self._server.serve())
        except BaseException as exc:  # SystemExit from uvicorn when the port is taken, among others
            self._error = exc

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        self.app.state.streams.stopping.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("the API thread did not stop within %.0fs", STOP_TIMEOUT_S)
