"""The soak: one worker takes posts at a steady pace for ten minutes while the rest of the suite runs.

It is `yuqing bench memory --paced-s 600` with fewer posts, started in a thread once the suite is
collected, so its ten minutes overlap the other tests instead of adding ten minutes to CI. Its pace
(five posts a second) costs them a few percent of one core. Tests marked ``soak`` run last and read its
report through the ``soak_report`` fixture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline.devkit.bench.memory_bench import run as run_memory_bench
from pipeline.devkit.embedded_services import redis_reachable
from pipeline.settings import Settings, get_settings
from tests.plugins.services import REDIS_URL
from tests.support.require import require_service
from tests.support.soak import SOAK_CHUNKS, SOAK_GRACE_S, SOAK_POSTS, SOAK_S


@dataclass
class Soak:
    report: dict[str, Any] | None = None
    error: BaseException | None = None
    missing: str | None = None  # a service the soak needs and did not find
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, settings: Settings) -> None:
        try:
            self.report = run_memory_bench(
                settings, SOAK_POSTS, SOAK_CHUNKS, paced_s=SOAK_S, timeout_s=SOAK_S + SOAK_GRACE_S
            )
        except BaseException as exc:  # handed to the test that reads the report
            self.error = exc
        finally:
            self.done.set()


SOAK_KEY = pytest.StashKey[Soak]()


def start_soak() -> Soak:
    soak = Soak()
    model_path = get_settings().model_path
    if not (model_path / "model.json").exists():
        soak.missing = f"no model at {model_path}: set YUQING_MODEL_PATH to a model folder"
    elif not redis_reachable(REDIS_URL):
        soak.missing = f"no Redis at {REDIS_URL} (see tests/services/redis.sh)"
    if soak.missing:
        soak.done.set()
        return soak
    settings = Settings(model_path=model_path.resolve(), redis_url=REDIS_URL)
    threading.Thread(target=soak.run, args=(settings,), name="yuqing-soak", daemon=True).start()
    return soak


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soaks = [item for item in items if item.get_closest_marker("soak")]
    if not soaks:
        return
    items[:] = [item for item in items if not item.get_closest_marker("soak")] + soaks
    config.stash[SOAK_KEY] = start_soak()


@pytest.fixture(scope="session")
def soak_report(pytestconfig: pytest.Config) -> dict[str, Any]:
    """The soak's memory report, once its posts are all counted."""
    soak = pytestconfig.stash[SOAK_KEY]
    if not soak.done.wait(SOAK_S + 2 * SOAK_GRACE_S):
        pytest.fail("the soak did not finish in time")
    if soak.missing:
        require_service(False, soak.missing)
    if soak.error is not None:
        raise soak.error
    assert soak.report is not None
    return soak.report
