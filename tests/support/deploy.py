"""Deploy tools the deploy tests run: the venv's (the dev extra), else one on PATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.support.require import require_service

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """The venv's tool (the dev extra), else one on PATH; missing: skipped here, a failure in CI."""
    found = str(BIN / name) if (BIN / name).exists() else shutil.which(name)
    require_service(found is not None, f"{name} not installed (make install; tests/services/kubectl.sh)")
    assert found is not None
    return found
