"""Every HTTP path the README and docs name is one that yuqing serves."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.api.app import create_app
from pipeline.ingest.http import router as ingest_router
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# A path under the API prefix or a top-level name, alone or after a host; a file path (pipeline/api/app.py)
# has a word before its slash.
ADDRESS = re.compile(
    r"(?:https?://[\w.\-\[\]]+(?::\d+)?|(?<![\w.\-/:]))(/api/v1/[\w\-/{}.]*[\w}]"
    r"|/(?:openapi\.json|docs|redoc|metrics|healthz|readyz|health|posts|session|stream))(?![\w\-])"
)
# The worker's probe port answers these paths (workers/probes.py compares them one by one).
WORKER_PATH = re.compile(r'path == "(/\w+)"')


def served_paths() -> set[str]:
    api = create_app(Settings())
    paths = set(api.openapi()["paths"]) | {getattr(route, "path", "") for route in api.routes}
    paths |= {route.path for route in ingest_router.routes}  # type: ignore[attr-defined]
    return paths | set(WORKER_PATH.findall((REPO / "workers" / "probes.py").read_text(encoding="utf-8")))


def named_paths() -> dict[str, str]:
    found = {}
    for document in DOCUMENTS:
        for match in ADDRESS.finditer(document.read_text(encoding="utf-8")):
            found[match.group(1).split("?")[0]] = document.name
    return found


def test_the_documents_name_only_served_paths() -> None:
    served = served_paths()
    named = named_paths()
    assert "/api/v1/openapi.json" in named  # where a new user looks for the API's description
    assert {path: doc for path, doc in named.items() if path not in served} == {}


def test_the_address_pattern_finds_paths_and_skips_file_names() -> None:
    text = (
        "see `/api/v1/alerts/{alert_id}`, POST /posts, pipeline/api/app.py and http://h:8300/ or /api/v1/…, "
        "http://127.0.0.1:8300/api/v1/openapi.json"
    )
    found = [m.group(1) for m in ADDRESS.finditer(text)]
    assert found == ["/api/v1/alerts/{alert_id}", "/posts", "/api/v1/openapi.json"]
