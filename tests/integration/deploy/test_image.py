"""The images as deploy/Dockerfile builds them, checked statically: stage order and layers, a non-root user
and a health check, what is copied, the slim image's split of the dependencies (and that its commands
never import torch), and the health-check script itself."""

from __future__ import annotations

import http.server
import importlib.util
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.integration

DOCKERFILE = REPO / "deploy" / "Dockerfile"


def stages() -> dict[str, list[str]]:
    """Instructions per stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            found[current] = []
        found[current].append(line)
    return found


def index_of(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_the_dockerfile_layers_dependencies_before_the_source() -> None:
    found = stages()
    assert list(found) == ["", "dashboard", "base", "wheel", "slim", "full"]
    base, full = found["base"], found["full"]
    assert not any(re.search(r"COPY (pipeline|workers|schemas)\b", line) for line in base)
    assert index_of(base, r"pip install -r") > index_of(base, r"COPY pyproject.toml")
    assert any("--exclude torch,transformers,safetensors" in line for line in base)
    # full: torch (by TORCH_VARIANT) is installed before the source wheel arrives, and the wheel without deps.
    assert "ARG TORCH_VARIANT=cpu" in full
    torch = index_of(full, r'index-url "\$\{TORCH_INDEX_URL\}/\$\{TORCH_VARIANT\}"')
    assert torch < index_of(full, r"COPY --from=wheel")
    assert any("pip install --no-deps /wheels/" in line for line in found["slim"] + full)
    assert not any("torch" in line for line in found["slim"])


@pytest.mark.parametrize("target", ["slim", "full"])
def test_each_image_runs_as_non_root_with_a_healthcheck(target: str) -> None:
    lines = stages()[target]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK ") and "yuqing-healthcheck" in line for line in lines)
    assert 'ENTRYPOINT ["yuqing"]' in lines


def test_every_path_the_dockerfile_copies_exists_and_is_not_dockerignored() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    for lines in stages().values():
        for line in lines:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), source
                    assert not any(source == entry or source.startswith(entry.rstrip("/") + "/") for entry in ignored)


def test_requirements_split_the_dependencies_without_loss() -> None:
    spec = importlib.util.spec_from_file_location("yuqing_deploy_requirements", REPO / "deploy" / "requirements.py")
    assert spec is not None and spec.loader is not None
    requirements = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(requirements)
    pyproject = REPO / "pyproject.toml"
    model = {"torch", "transformers", "safetensors"}
    slim = requirements.dependencies(pyproject, exclude=frozenset(model))
    extra = requirements.dependencies(pyproject, only=model)
    assert sorted(slim + extra) == sorted(requirements.dependencies(pyproject))
    assert {requirements.requirement_name(spec) for spec in extra} == model
    with pytest.raises(SystemExit):
        requirements.main([str(pyproject), "--only", "torch,not-a-dependency"])


def test_api_ingest_migrate_and_a_storing_worker_never_import_torch() -> None:
    """What the slim image rests on: those commands' modules import with torch and transformers missing."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'safetensors'): sys.modules[name] = None\n"
        "import pipeline.cli.main, pipeline.api.server, pipeline.ingest.http, pipeline.ingest.producer\n"
        "import pipeline.stores.clickhouse.migrations, pipeline.stores.clickhouse.engines\n"
        # The storing worker of the GPU overlay runs the slim image: its agent and detectors need no model.
        "from pipeline.settings import Settings\n"
        "from workers.app import Worker\n"
        "worker = Worker(Settings(worker_agents='aggregate'))\n"
        "assert worker.stores and not worker.scores\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def status_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (204, 0), (503, 1), (404, 1)])
def test_the_image_healthcheck_exits_by_the_answer(status_server: str, status: int, code: int) -> None:
    script = REPO / "deploy" / "healthcheck.py"
    result = subprocess.run([sys.executable, str(script), f"{status_server}/{status}"], capture_output=True, timeout=30)
    assert result.returncode == code


def test_the_image_healthcheck_fails_when_nothing_listens() -> None:
    script = REPO / "deploy" / "healthcheck.py"
    result = subprocess.run(
        [sys.executable, str(script), "http://127.0.0.1:9/healthz"], capture_output=True, timeout=30
    )
    assert result.returncode == 1 and b"unhealthy" in result.stderr
