"""deploy/k8s as an operator takes it: every kustomize overlay built with kubectl and validated against the
Kubernetes schemas, and its invariants (probes, non-root, partitions >= workers, each worker scaled on its
own group's lag, replicated topics). No cluster is needed: kustomize runs locally."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.kafka import topic_names
from pipeline.settings import Settings
from tests.support.deploy import tool
from tests.support.paths import REPO
from workers.app import group_of

pytestmark = pytest.mark.integration

K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists())
# Kinds Kubernetes' own schemas cover; the custom resources are checked by hand (their CRDs are not shipped).
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1"}
CUSTOM = {"KafkaTopic": "kafka.strimzi.io/v1beta2", "ScaledObject": "keda.sh/v1alpha1"}
K8S_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest cluster we claim, and the newest schemas shipped


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def builds() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(K8S / "overlays" / name) for name in OVERLAYS}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    return found


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(named(docs, "ConfigMap", "yuqing-config")["data"])


def test_the_overlays_are_cpu_and_gpu() -> None:
    assert OVERLAYS == ["cpu", "gpu"]
    assert not (K8S / "worker.yaml").exists()  # the old lone Deployment is folded into the base


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_builds_and_validates_against_the_kubernetes_schemas(
    overlay: str, builds: dict[str, list[dict[str, Any]]]
) -> None:
    import kubernetes_validate

    docs = builds[overlay]
    for doc in docs:
        if doc["kind"] in CUSTOM:  # parsed by kustomize; its schema is the operator's CRD
            assert doc["apiVersion"] == CUSTOM[doc["kind"]], doc["kind"]
            assert doc["metadata"]["name"] and doc["spec"], doc["kind"]
            continue
        assert doc["apiVersion"] in CORE_GROUPS, f"{doc['kind']} {doc['apiVersion']}: neither core nor expected CRD"
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    kinds = {doc["kind"] for doc in docs}
    assert kinds >= {"Deployment", "Service", "ConfigMap", "Secret", "Job", "PodDisruptionBudget", *CUSTOM}


def test_the_kubernetes_schema_check_rejects_a_mistake(builds: dict[str, list[dict[str, Any]]]) -> None:
    import kubernetes_validate

    worker = named(builds["cpu"], "Deployment", "yuqing-worker")
    broken = {**worker, "spec": {**worker["spec"], "replica": 2}}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_non_root_bounded_and_probed(overlay: str, builds: dict[str, list[dict[str, Any]]]) -> None:
    docs = builds[overlay]
    for where, spec in pod_specs(docs):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] > 0, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"/tmp"} <= {mount["mountPath"] for mount in container["volumeMounts"]}, where
            assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], where
            if where.startswith("Deployment/"):
                assert container.get("livenessProbe") and container.get("readinessProbe"), where
    for deployment in of_kind(docs, "Deployment"):  # each has a disruption budget over its pods
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budgets = [
            b
            for b in of_kind(docs, "PodDisruptionBudget")
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(budgets) == 1, deployment["metadata"]["name"]


def worker_deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Deployments that run `yuqing worker`: one for every agent, or a scoring and a storing one."""
    return [
        d for d in of_kind(docs, "Deployment") if d["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    ]


def agents_of(deployment: dict[str, Any]) -> str:
    """YUQING_WORKER_AGENTS as the Deployment's container sets it over the ConfigMap (default: all)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container.get("env", [])}.get("YUQING_WORKER_AGENTS", "all")


def test_every_worker_probes_healthz_and_readyz_on_8600(builds: dict[str, list[dict[str, Any]]]) -> None:
    for docs in builds.values():
        for deployment in worker_deployments(docs):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert container["ports"] == [{"name": "http", "containerPort": 8600, "protocol": "TCP"}]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert config(docs)["YUQING_WORKER_HTTP_HOST"] == "0.0.0.0"
        assert config(docs)["YUQING_WORKER_HTTP_PORT"] == "8600"


def test_every_referenced_config_and_secret_exists(builds: dict[str, list[dict[str, Any]]]) -> None:
    for docs in builds.values():
        present = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
        for where, spec in pod_specs(docs):
            for container in spec["containers"]:
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        assert ("Secret", source["secretRef"]["name"]) in present, where
                    if "configMapRef" in source:
                        assert ("ConfigMap", source["configMapRef"]["name"]) in present, where


def test_config_and_secret_keys_are_settings_and_the_secret_is_a_marked_template(
    builds: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = builds["cpu"]
    secret = named(docs, "Secret", "yuqing-secrets")["stringData"]
    assert all("REPLACE-ME" in value for value in secret.values())
    env = {**config(docs), **secret}
    assert not set(env) & set(config(docs)) & set(secret)  # nothing set twice
    for key, value in env.items():  # every key is a declared setting, and together they validate
        assert key.startswith("YUQING_") and key[7:].lower() in Settings.model_fields, key
        monkeypatch.setenv(key, value)
    Settings()


def test_keda_scales_each_worker_on_its_own_groups_lag_within_the_partitions(
    builds: dict[str, list[dict[str, Any]]],
) -> None:
    """The scoring work waits on posts.raw and the storing work on posts.scored, each in the group its
    agents join (workers.app.group_of); a worker running both is scaled on raw."""
    for docs in builds.values():
        settings = config(docs)
        for deployment in worker_deployments(docs):
            name, agents = deployment["metadata"]["name"], agents_of(deployment)
            (scaled,) = [
                s["spec"] for s in of_kind(docs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name
            ]
            assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= int(settings["YUQING_PARTITIONS"])
            (trigger,) = scaled["triggers"]
            assert trigger["type"] == "kafka"
            topic = settings["YUQING_TOPIC_SCORED" if agents == "aggregate" else "YUQING_TOPIC_RAW"]
            assert trigger["metadata"]["topic"] == topic
            group = group_of(Settings(worker_group=settings["YUQING_WORKER_GROUP"], worker_agents=agents))
            assert trigger["metadata"]["consumerGroup"] == group, name
            assert trigger["metadata"]["bootstrapServers"] == settings["YUQING_BROKER"]


def test_gpu_pods_only_score_and_cpu_pods_of_the_slim_image_store(builds: dict[str, list[dict[str, Any]]]) -> None:
    gpu = {d["metadata"]["name"]: agents_of(d) for d in worker_deployments(builds["gpu"])}
    assert gpu == {"yuqing-worker": "score", "yuqing-storer": "aggregate"}
    storer = named(builds["gpu"], "Deployment", "yuqing-storer")["spec"]["template"]["spec"]
    assert storer["containers"][0]["image"].endswith("-slim") and "nvidia.com/gpu" not in str(storer)
    assert {d["metadata"]["name"]: agents_of(d) for d in worker_deployments(builds["cpu"])} == {"yuqing-worker": "all"}


def test_kafka_topics_are_replicated_three_ways_two_in_sync(builds: dict[str, list[dict[str, Any]]]) -> None:
    for docs in builds.values():
        settings = config(docs)
        topics = {doc["spec"]["topicName"]: doc for doc in of_kind(docs, "KafkaTopic")}
        assert (
            set(topics)
            == set(topic_names(Settings()))
            == {settings[f"YUQING_TOPIC_{kind}"] for kind in ("RAW", "SCORED", "DLQ", "ALERTS")}
        )
        for name, topic in topics.items():
            assert topic["spec"]["replicas"] == 3 and topic["spec"]["config"]["min.insync.replicas"] == "2", name
            assert topic["spec"]["partitions"] == int(settings["YUQING_PARTITIONS"]), name
            assert topic["metadata"]["labels"]["strimzi.io/cluster"], name
        assert (settings["YUQING_TOPIC_REPLICATION_FACTOR"], settings["YUQING_TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")


def test_the_migration_job_runs_db_migrate(builds: dict[str, list[dict[str, Any]]]) -> None:
    for docs in builds.values():
        job = named(docs, "Job", "yuqing-migrate")["spec"]
        (container,) = job["template"]["spec"]["containers"]
        assert container["args"][:2] == ["db", "migrate"]
        assert job["template"]["spec"]["restartPolicy"] == "OnFailure" and job["backoffLimit"] > 0


def test_the_gpu_overlay_asks_for_a_gpu_and_the_cpu_one_does_not(builds: dict[str, list[dict[str, Any]]]) -> None:
    gpu = named(builds["gpu"], "Deployment", "yuqing-worker")["spec"]["template"]["spec"]
    (container,) = gpu["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert re.search(r":[^:]*cu\d+$", container["image"])
    assert config(builds["gpu"])["YUQING_DEVICE"] == "cuda"
    cpu = named(builds["cpu"], "Deployment", "yuqing-worker")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in str(cpu) and config(builds["cpu"])["YUQING_DEVICE"] == "cpu"
    for docs in builds.values():  # the API, ingest and the migration run the slim image
        for where, spec in pod_specs(docs):
            if "worker" not in where:
                assert spec["containers"][0]["image"].endswith("-slim"), where
