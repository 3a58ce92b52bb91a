"""A missing service skips a test on a developer machine and fails it in CI."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(available: bool, reason: str) -> None:
    """Skip with ``reason`` on a developer machine; in CI a missing service is a failure."""
    if available:
        return
    if in_ci():
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)
