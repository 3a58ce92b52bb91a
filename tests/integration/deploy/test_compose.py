"""docker-compose.yml as an operator takes it: validated against the Compose JSON Schema (check-jsonschema),
and its invariants (health checks, restarts, credentials from the environment, the GPU profile). No Docker
daemon is needed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import tool
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_compose_validates_against_the_compose_schema() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_compose_schema_check_rejects_a_mistake(tmp_path: Path) -> None:
    """The validator bites: a misspelt healthcheck key in a copy of the file is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text(encoding="utf-8").replace("start_period:", "start_perod:", 1))
    result = check_compose(broken)
    assert result.returncode == 1 and "start_perod" in result.stdout


def one_shots(compose: dict[str, Any]) -> set[str]:
    """Services others wait on to finish (service_completed_successfully): their exit status is the check."""
    return {
        name
        for service in compose["services"].values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }


def test_every_compose_service_restarts_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    jobs = one_shots(compose)
    assert jobs == {"migrate"}
    for name, service in compose["services"].items():
        if name in jobs:
            assert service["restart"] == "no", name
            continue
        # A worker exits 70 on purpose to be replayed: it must come back.
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_workers_probe_readyz_and_wait_for_the_migration(compose: dict[str, Any]) -> None:
    for name in ("worker", "worker-gpu"):
        service = compose["services"][name]
        assert "http://127.0.0.1:8600/readyz" in service["healthcheck"]["test"]
        assert service["environment"]["YUQING_WORKER_HTTP_HOST"] == "0.0.0.0"
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["ingest"] == {"condition": "service_healthy"}  # it creates the topics
    assert compose["services"]["migrate"]["command"] == ["db", "migrate"]


def test_compose_clickhouse_credentials_come_from_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server = services["clickhouse"]["environment"]
    assert server["CLICKHOUSE_USER"].startswith("${CLICKHOUSE_USER:?")
    assert server["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_PASSWORD:?")
    for name, service in services.items():
        url = service.get("environment", {}).get("YUQING_CLICKHOUSE_URL")
        if url is not None:  # the same user and password the server is created with
            assert re.match(r"clickhouse://\$\{CLICKHOUSE_USER:\?[^}]*\}:\$\{CLICKHOUSE_PASSWORD:\?[^}]*\}@", url), name


def test_compose_tokens_are_required_and_stores_keep_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ingest"]["environment"]["YUQING_INGEST_TOKENS"].startswith("${YUQING_INGEST_TOKENS:?")
    assert services["api"]["environment"]["YUQING_API_TOKENS"].startswith("${YUQING_API_TOKENS:?")
    for name, path in (("kafka", "/var/lib/kafka/data"), ("redis", "/data"), ("clickhouse", "/var/lib/clickhouse")):
        volume = f"{name}-data"
        assert f"{volume}:{path}" in services[name]["volumes"], name
        assert volume in compose["volumes"]


def test_the_gpu_profile_reserves_an_nvidia_device_with_cuda_torch(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert re.search(r"cu\d+", gpu["build"]["args"]["TORCH_VARIANT"])
    assert compose["services"]["worker"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert "profiles" not in compose["services"]["worker"]
