"""YUQING_LOG_FORMAT=json as an operator runs it: a worker process (faust sets its logging up itself)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_worker_logs_json_lines_with_secrets_redacted(tmp_path: Path) -> None:
    """No broker listens, so the worker loads its model, starts faust, logs the failure and exits."""
    port = closed_port()
    env = {
        **os.environ,
        "YUQING_LOG_FORMAT": "json",
        "YUQING_BROKER": f"localhost:{port}",
        # A secret that faust's own log lines carry (the broker's host): proof that faust's handlers redact.
        "YUQING_AUTHOR_KEY": "localhost",
        "YUQING_REDIS_URL": f"redis://:redis-pass@127.0.0.1:{closed_port()}/0",
        "YUQING_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
        "YUQING_WORKER_HTTP_PORT": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"], env=env, capture_output=True, timeout=180, check=False
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).decode().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, ours, faust's and aiokafka's, is one object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    loggers = {record["logger"].split(".")[0] for record in records}
    assert {"workers", "faust"} <= loggers, loggers
    assert any("exception" in record for record in records)  # the bootstrap failure, with its traceback
    text = "\n".join(lines)
    assert "localhost" not in text and "redis-pass" not in text
    assert f"***:{port}" in text
