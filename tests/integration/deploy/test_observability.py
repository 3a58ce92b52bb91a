"""deploy/observability: the Prometheus rules, their unit tests, the example scrape config and the Grafana
dashboard, checked with Debian's promtool, and every metric they name declared by the metrics module
(tests/e2e/test_worker_metrics.py checks that those appear on a running worker)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from pipeline.observability import metrics
from pipeline.settings import Settings
from tests.support.require import require_service

ROOT = Path(__file__).resolve().parents[3]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "prometheus" / "rules.yml"
RULES_TEST = OBSERVABILITY / "prometheus" / "rules_test.yml"
CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "yuqing.json"
COMPOSE = ROOT / "docker-compose.yml"

# A metric yuqing exports (process_* from prometheus-client's process collector); recording rules are
# named level:metric:operations, with colons, and are matched apart.
METRIC_NAME = re.compile(r"\b(?:yuqing|process)_[a-z0-9_]+\b")
RECORDED_NAME = re.compile(r"\byuqing:[a-z0-9_:]+")
# What the issue asks the rules to watch, and the dashboard to show.
REQUIRED_ALERTS = (
    "YuqingWorkerDown",
    "YuqingConsumerLagGrowing",
    "YuqingSinkRetrying",
    "YuqingDeadLettersHigh",
    "YuqingDetectorHeartbeatMissing",
    "YuqingLiveLatencyHigh",
    "YuqingAlertLatencyHigh",
)
DASHBOARD_METRICS = (
    "yuqing_posts_in_total",
    "yuqing_posts_out_total",
    "yuqing_dlq_records_total",
    "yuqing_consumer_lag",
    "yuqing_batch_size_bucket",
    "yuqing_batch_fill_wait_seconds_bucket",
    "yuqing_model_calls_total",
    "yuqing_model_call_seconds_bucket",
    "yuqing_model_queue_depth",
    "yuqing_sink_flush_seconds_bucket",
    "yuqing_sink_retries_total",
    "yuqing_event_to_sink_seconds_bucket",
    "yuqing_event_to_alert_seconds_bucket",
    "yuqing_alerts_total",
    "yuqing_webhook_deliveries_total",
    "process_resident_memory_bytes",
)
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows too."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(board: dict[str, Any]) -> dict[str, str]:
    """Every PromQL expression of the dashboard (panel targets and template queries), by where it is."""
    found = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            found[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found[f"variable {variable['name']}"] = query["query"] if isinstance(query, dict) else query
    return found


def declared_names() -> set[str]:
    """The names PromQL can select from what the metrics module registered on the default registry:
    a counter ``x`` as ``x_total``, a histogram as ``x_bucket``/``x_count``/``x_sum``, a gauge as itself."""
    assert metrics.ALERTED_METRICS  # the module is imported: its metrics are registered
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def referenced_names() -> dict[str, set[str]]:
    """Every metric name the rules (expressions and annotations), their unit tests' series and the
    dashboard's expressions name, by file."""
    rule_text = "\n".join("\n".join([rule["expr"], *rule.get("annotations", {}).values()]) for rule in rules())
    series = []
    for test in load_yaml(RULES_TEST)["tests"]:
        series += [item["series"] for item in test.get("input_series", [])]
        series += [item["expr"] for item in test.get("promql_expr_test", [])]
    return {
        RULES.name: set(METRIC_NAME.findall(rule_text)),
        RULES_TEST.name: set(METRIC_NAME.findall("\n".join(series))),
        DASHBOARD.name: set(METRIC_NAME.findall("\n".join(dashboard_expressions(dashboard()).values()))),
    }


# Pure checks


def test_every_metric_named_is_alerted_and_declared() -> None:
    declared = declared_names()
    assert set(metrics.ALERTED_METRICS) - declared == set(), "ALERTED_METRICS names what no metric declares"
    for where, names in referenced_names().items():
        assert names, where
        assert names - set(metrics.ALERTED_METRICS) == set(), f"{where} names metrics not in ALERTED_METRICS"


def test_the_name_check_catches_an_unknown_metric() -> None:
    names = set(METRIC_NAME.findall('sum(rate(yuqing_posts_in_total[5m])) / yuqing_no_such_thing{a="b"}'))
    assert names == {"yuqing_posts_in_total", "yuqing_no_such_thing"}
    assert "yuqing_no_such_thing" not in declared_names()
    assert METRIC_NAME.findall('yuqing:consumer_lag:sum_by_topic{job="yuqing-worker"} YUQING_X') == []


def test_recorded_series_are_recorded_by_the_rules() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    assert all(RECORDED_NAME.fullmatch(name) for name in recorded), recorded
    used = set(RECORDED_NAME.findall("\n".join(rule["expr"] for rule in rules())))
    used |= set(RECORDED_NAME.findall("\n".join(dashboard_expressions(dashboard()).values())))
    assert used - recorded == set()


def test_every_alert_has_a_severity_a_runbook_and_cases_that_fire_and_do_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in load_yaml(RULES_TEST)["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert len(rule["annotations"]["description"]) > 100, f"{name}: say what to check and do"
        assert name in fired, f"{name}: no case where it fires"
        assert name in quiet, f"{name}: no case where it stays quiet"
    assert (fired | quiet) - set(alerts()) == set(), "cases for alerts that do not exist"
    for needed in REQUIRED_ALERTS:
        assert needed in alerts()


def test_the_scrape_config_matches_the_rules_and_the_compose_services() -> None:
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    named = set(re.findall(r'job=~?"([^"]+)"', "\n".join(rule["expr"] for rule in rules())))
    for pattern in named:
        assert any(re.fullmatch(pattern, job) for job in jobs), f"rules select job {pattern!r}: none scraped"
    assert set(jobs) == {"yuqing-worker", "yuqing-api", "yuqing-ingest"}
    services = set(load_yaml(COMPOSE)["services"])
    worker = jobs["yuqing-worker"]["dns_sd_configs"][0]
    assert worker["names"] == ["worker"] and "worker" in services
    assert worker["port"] == Settings.model_fields["worker_http_port"].default
    api, ingest = (jobs[name]["static_configs"][0]["targets"] for name in ("yuqing-api", "yuqing-ingest"))
    assert api == [f"api:{Settings.model_fields['api_port'].default}"] and "api" in services
    assert ingest == ["ingest:8080"] and "ingest" in services
    assert "0.0.0.0:8080" in load_yaml(COMPOSE)["services"]["ingest"]["command"]
    assert config["rule_files"] == [RULES.name]


def test_the_dashboard_reads_one_prometheus_input() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    assert [item["name"] for item in board["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in panels(board) if panel["type"] != "row"]
    assert len(graphs) >= 12
    for panel in graphs:
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
            assert target["expr"].strip(), panel["title"]
    names = referenced_names()[DASHBOARD.name]
    for wanted in DASHBOARD_METRICS:
        assert wanted in names, wanted


# promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    path = os.environ.get("YUQING_TEST_PROMTOOL") or shutil.which("promtool")
    require_service(
        path is not None and os.access(path, os.X_OK),
        "promtool is missing: `bash tests/services/promtool.sh` installs Debian's (package prometheus)",
    )
    assert path is not None
    return path


def run_promtool(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.integration
def test_promtool_checks_the_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(RULES.relative_to(ROOT)))
    assert f"SUCCESS: {len(rules())} rules found" in output, output


@pytest.mark.integration
def test_promtool_runs_the_rules_unit_tests(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", str(RULES_TEST.relative_to(ROOT)))
    assert "SUCCESS" in output and "FAILED" not in output, output


@pytest.mark.integration
def test_promtool_checks_the_example_config(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", str(CONFIG.relative_to(ROOT)))
    assert "1 rule files found" in output and "is valid prometheus config file syntax" in output, output


@pytest.mark.integration
def test_promtool_parses_every_dashboard_expression(promtool: str, tmp_path: Path) -> None:
    """Each expression, with Grafana's variables given values, as a recording rule promtool parses."""
    board = dashboard()
    variables = {variable["name"] for variable in board["templating"]["list"]}

    def concrete(expr: str) -> str:
        expr = re.sub(r"^label_values\((.+),\s*\w+\)$", r"\1", expr)  # Grafana's: the series it reads
        expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
        return re.sub(r"\$\{?(\w+)\}?", lambda m: ".*" if m.group(1) in variables else m.group(0), expr)

    expressions = dashboard_expressions(board)
    group = [
        {"record": f"grafana:expression_{i}", "expr": concrete(expr)} for i, expr in enumerate(expressions.values())
    ]
    for rule in group:
        assert "$" not in rule["expr"], rule["expr"]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": group}]}), encoding="utf-8")
    output = run_promtool(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(group)} rules found" in output, output
