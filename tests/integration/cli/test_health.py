from __future__ import annotations

import pytest
from pydantic import SecretStr

from pipeline.cli.health import check_health
from pipeline.kafka import ensure_topics
from pipeline.settings import Settings, get_settings
from tests.support.require import require_service

pytestmark = pytest.mark.integration


def test_healthy_when_every_service_answers(settings: Settings) -> None:
    ensure_topics(settings)
    model_path = get_settings().model_path
    require_service((model_path / "model.json").exists(), f"no model at {model_path}")
    healthy, report = check_health(settings.model_copy(update={"model_path": model_path}))
    assert healthy, report


def test_unhealthy_names_the_broken_part(settings: Settings) -> None:
    ensure_topics(settings)
    broken = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})
    healthy, report = check_health(broken)
    assert not healthy
    assert report["redis"].startswith("error") and report["broker"] == "ok"
