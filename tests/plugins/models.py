"""Model fixtures: one tiny trained e5 teacher per session, for the tests that only read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_e5 import build_tiny_base, train_tiny


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = build_tiny_base(tmp_path_factory.mktemp("tiny-base"))
    out = tmp_path_factory.mktemp("tiny-teacher")
    train_tiny(base, out, steps=3)
    return out
