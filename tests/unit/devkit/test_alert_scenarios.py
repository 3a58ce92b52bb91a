"""The alerts bench's scenarios: impossible plans are refused clearly; timelines hold what they say."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alerting.service import load_alerts_config
from pipeline.devkit.bench.alert_scenarios import LATE_BY, Plan, Scenario, ScenarioError, default_plan, timeline
from pipeline.devkit.bench.alerts_bench import load_plan
from pipeline.domain.alerts import AlertError

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POOLS = {label: [f"{label}{i}号文本" for i in range(50)] for label in ("negative", "neutral", "positive")}


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"scenarios": []}, "at least 1"),
        ({"scenarios": [{"subject": "a", "kind": "surge", "rate": 60}]}, "needs start_minute"),
        ({"scenarios": [{"subject": "a", "kind": "steady", "rate": 60, "start_minute": 3}]}, "no start_minute"),
        ({"scenarios": [{"subject": "a", "kind": "steady", "rate": -1}]}, "greater than 0"),
        ({"scenarios": [{"subject": "a", "kind": "meteor", "rate": 1}]}, "Input should be"),
        (
            {"test_minutes": 5, "scenarios": [{"subject": "a", "kind": "surge", "rate": 9, "start_minute": 4}]},
            "ends after",
        ),
        ({"scenarios": [{"subject": "a", "kind": "steady", "rate": 9}] * 2}, "its own subject"),
        ({"warmup_minutes": 5, "scenarios": [{"subject": "a", "kind": "steady", "rate": 9}]}, "greater than or equal"),
    ],
)
def test_impossible_plans_are_refused_with_the_reason(tmp_path: Path, plan: dict[str, object], message: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(json.dumps(plan), encoding="utf-8")
    with pytest.raises(ScenarioError, match=message):
        load_plan(path, short=False)


def test_impossible_detector_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("defaults: {open_z: 1.0, close_z: 2.0}\n", encoding="utf-8")
    with pytest.raises(AlertError, match="close_z"):
        load_alerts_config(path)
    path.write_text("subjects: {星河乳业: {min_negatives: -3}}\n", encoding="utf-8")
    with pytest.raises(AlertError, match="星河乳业"):
        load_alerts_config(path)


def test_a_timeline_is_deterministic_and_holds_its_events() -> None:
    plan = default_plan(short=True)
    posts, truths = timeline(plan, POOLS, START)
    again, _ = timeline(plan, POOLS, START)
    assert [p.record for p in posts] == [p.record for p in again]
    assert [p.arrival for p in posts] == sorted(p.arrival for p in posts)
    assert {t.subject for t in truths} == {s.subject for s in plan.scenarios if s.start_minute is not None}
    test_start = START + timedelta(minutes=plan.warmup_minutes)
    flood = [p for p in posts if str(p.record["author_id"]).startswith("b3-bot")]
    assert len({str(p.record["text"])[:20] for p in flood}) == 1 and len(flood) > 300  # copies of one message
    late = [p for p in posts if p.record["id"].startswith("b5-") and p.arrival - datetime.fromisoformat(
        str(p.record["event_time"])) > LATE_BY - timedelta(minutes=1)]  # fmt: skip
    assert len(late) == 300 and all(p.arrival >= test_start for p in late)


def test_a_surge_multiplies_only_the_negatives_during_its_window() -> None:
    surge = Scenario(subject="s", kind="surge", rate=600, start_minute=2, duration_minutes=2, magnitude=4)
    plan = Plan(warmup_minutes=16, test_minutes=6, scenarios=(surge,))
    posts, (truth,) = timeline(plan, POOLS, START)

    def negatives(first: datetime, last: datetime) -> int:
        return sum(1 for p in posts if first <= p.arrival < last and "negative" in str(p.record["text"]))

    before = negatives(truth.onset - timedelta(minutes=2), truth.onset)
    during = negatives(truth.onset, truth.end)
    assert 3 * before < during < 5 * before


@pytest.mark.parametrize("short", [True, False])
def test_no_subject_of_a_plan_contains_another(short: bool) -> None:
    names = [s.subject for s in default_plan(short).scenarios]  # each post must match its own subject only
    assert not [(a, b) for a in names for b in names if a != b and a in b]
