"""End-to-end fixtures: worker processes, the served model, and settings on the ClickHouse server."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.devkit.bench.environment import server_database
from pipeline.devkit.demo import start_worker, stop_worker
from pipeline.settings import Settings, get_settings
from tests.support.require import require_service
from tests.support.waiting import WorkerFactory


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = get_settings().model_path
    require_service((path / "model.json").exists(), f"no model at {path}: set YUQING_MODEL_PATH to a model folder")
    return path.resolve()


@pytest.fixture
def e2e_settings(settings: Settings, clickhouse_server_url: str, model_path: Path) -> Settings:
    """Test settings on the ClickHouse server: the test reads it while worker processes write it."""
    url = server_database(clickhouse_server_url, f"yq_e2e_{uuid.uuid4().hex[:10]}")
    return settings.model_copy(update={"clickhouse_url": type(settings.clickhouse_url)(url), "model_path": model_path})


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start worker processes; every one still running at the end is stopped."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings) -> subprocess.Popen[bytes]:
        process = start_worker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        stop_worker(process, timeout_s=15)
