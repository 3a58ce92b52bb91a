"""A worker runs both agents, or one of them in that agent's own group, with the detectors where stores are."""

from __future__ import annotations

import pytest

from pipeline.settings import Settings
from workers.app import Worker


@pytest.mark.parametrize(
    ("agents", "group", "names", "detects"),
    [
        ("all", "yuqing-unit", {"score", "aggregate"}, True),
        ("score", "yuqing-unit-score", {"score"}, False),
        ("aggregate", "yuqing-unit-aggregate", {"aggregate"}, True),
    ],
)
def test_agents_groups_and_detectors(agents: str, group: str, names: set[str], detects: bool) -> None:
    worker = Worker(Settings(worker_group="yuqing-unit", worker_agents=agents))
    assert worker.app.conf.id == group
    assert {agent.name.rsplit(".", 1)[-1] for agent in worker.app.agents.values()} == names
    assert (worker.alerting is not None) is detects
    assert (worker.handoff is not None) is (agents == "all")  # only its own aggregate agent reads it back
