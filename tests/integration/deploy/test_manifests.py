"""The deploy files as an operator takes them: docker-compose.yml against the Compose JSON Schema, every kustomize
overlay built with kubectl and validated against the Kubernetes schemas, the image's Dockerfile, and the invariants
of each (health checks, restarts, probes, non-root, partitions >= workers, replicated topics).

No Docker daemon or cluster is needed: compose and the Dockerfile are checked statically, kustomize runs locally.
"""

from __future__ import annotations

import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.kafka import topic_names
from pipeline.settings import Settings
from tests.support.paths import REPO
from tests.support.require import require_service
from workers.app import group_of

pytestmark = pytest.mark.integration

COMPOSE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists())
DOCKERFILE = REPO / "deploy" / "Dockerfile"
BIN = Path(sys.executable).parent
# Kinds Kubernetes' own schemas cover; the custom resources are checked by hand (their CRDs are not shipped).
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1"}
CUSTOM = {"KafkaTopic": "kafka.strimzi.io/v1beta2", "ScaledObject": "keda.sh/v1alpha1"}
K8S_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest cluster we claim, and the newest schemas shipped


def tool(name: str) -> str:
    """The venv's tool (the dev extra), else one on PATH; missing: skipped here, a failure in CI."""
    found = str(BIN / name) if (BIN / name).exists() else shutil.which(name)
    require_service(found is not None, f"{name} not installed (make install; tests/services/kubectl.sh)")
    assert found is not None
    return found


# ---------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_compose_validates_against_the_compose_schema() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_compose_schema_check_rejects_a_mistake(tmp_path: Path) -> None:
    """The validator bites: a misspelt healthcheck key in a copy of the file is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text(encoding="utf-8").replace("start_period:", "start_perod:", 1))
    result = check_compose(broken)
    assert result.returncode == 1 and "start_perod" in result.stdout


def one_shots(compose: dict[str, Any]) -> set[str]:
    """Services others wait on to finish (service_completed_successfully): their exit status is the check."""
    return {
        name
        for service in compose["services"].values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }


def test_every_compose_service_restarts_and_has_a_healthcheck(compose: dict[str, Any]) -> None:
    jobs = one_shots(compose)
    assert jobs == {"migrate"}
    for name, service in compose["services"].items():
        if name in jobs:
            assert service["restart"] == "no", name
            continue
        # A worker exits 70 on purpose to be replayed: it must come back.
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_workers_probe_readyz_and_wait_for_the_migration(compose: dict[str, Any]) -> None:
    for name in ("worker", "worker-gpu"):
        service = compose["services"][name]
        assert "http://127.0.0.1:8600/readyz" in service["healthcheck"]["test"]
        assert service["environment"]["YUQING_WORKER_HTTP_HOST"] == "0.0.0.0"
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["ingest"] == {"condition": "service_healthy"}  # it creates the topics
    assert compose["services"]["migrate"]["command"] == ["db", "migrate"]


def test_compose_clickhouse_credentials_come_from_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server = services["clickhouse"]["environment"]
    assert server["CLICKHOUSE_USER"].startswith("${CLICKHOUSE_USER:?")
    assert server["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_PASSWORD:?")
    for name, service in services.items():
        url = service.get("environment", {}).get("YUQING_CLICKHOUSE_URL")
        if url is not None:  # the same user and password the server is created with
            assert re.match(r"clickhouse://\$\{CLICKHOUSE_USER:\?[^}]*\}:\$\{CLICKHOUSE_PASSWORD:\?[^}]*\}@", url), name


def test_compose_tokens_are_required_and_stores_keep_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ingest"]["environment"]["YUQING_INGEST_TOKENS"].startswith("${YUQING_INGEST_TOKENS:?")
    assert services["api"]["environment"]["YUQING_API_TOKENS"].startswith("${YUQING_API_TOKENS:?")
    for name, path in (("kafka", "/var/lib/kafka/data"), ("redis", "/data"), ("clickhouse", "/var/lib/clickhouse")):
        volume = f"{name}-data"
        assert f"{volume}:{path}" in services[name]["volumes"], name
        assert volume in compose["volumes"]


def test_the_gpu_profile_reserves_an_nvidia_device_with_cuda_torch(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert re.search(r"cu\d+", gpu["build"]["args"]["TORCH_VARIANT"])
    assert compose["services"]["worker"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert "profiles" not in compose["services"]["worker"]


# ---------------------------------------------------------------- deploy/k8s (kustomize)


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


# ---------------------------------------------------------------- deploy/Dockerfile


def stages() -> dict[str, list[str]]:
    """Instructions per stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            found[current] = []
        found[current].append(line)
    return found


def index_of(lines: list[str], pattern: str) -> int:
    return next(i for i, line in enumerate(lines) if re.search(pattern, line))


def test_the_dockerfile_layers_dependencies_before_the_source() -> None:
    found = stages()
    assert list(found) == ["", "dashboard", "base", "wheel", "slim", "full"]
    base, full = found["base"], found["full"]
    assert not any(re.search(r"COPY (pipeline|workers|schemas)\b", line) for line in base)
    assert index_of(base, r"pip install -r") > index_of(base, r"COPY pyproject.toml")
    assert any("--exclude torch,transformers,safetensors" in line for line in base)
    # full: torch (by TORCH_VARIANT) is installed before the source wheel arrives, and the wheel without deps.
    assert "ARG TORCH_VARIANT=cpu" in full
    torch = index_of(full, r'index-url "\$\{TORCH_INDEX_URL\}/\$\{TORCH_VARIANT\}"')
    assert torch < index_of(full, r"COPY --from=wheel")
    assert any("pip install --no-deps /wheels/" in line for line in found["slim"] + full)
    assert not any("torch" in line for line in found["slim"])


@pytest.mark.parametrize("target", ["slim", "full"])
def test_each_image_runs_as_non_root_with_a_healthcheck(target: str) -> None:
    lines = stages()[target]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK ") and "yuqing-healthcheck" in line for line in lines)
    assert 'ENTRYPOINT ["yuqing"]' in lines


def test_every_path_the_dockerfile_copies_exists_and_is_not_dockerignored() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    for lines in stages().values():
        for line in lines:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), source
                    assert not any(source == entry or source.startswith(entry.rstrip("/") + "/") for entry in ignored)


def test_requirements_split_the_dependencies_without_loss() -> None:
    spec = importlib.util.spec_from_file_location("yuqing_deploy_requirements", REPO / "deploy" / "requirements.py")
    assert spec is not None and spec.loader is not None
    requirements = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(requirements)
    pyproject = REPO / "pyproject.toml"
    model = {"torch", "transformers", "safetensors"}
    slim = requirements.dependencies(pyproject, exclude=frozenset(model))
    extra = requirements.dependencies(pyproject, only=model)
    assert sorted(slim + extra) == sorted(requirements.dependencies(pyproject))
    assert {requirements.requirement_name(spec) for spec in extra} == model
    with pytest.raises(SystemExit):
        requirements.main([str(pyproject), "--only", "torch,not-a-dependency"])


def test_api_ingest_migrate_and_a_storing_worker_never_import_torch() -> None:
    """What the slim image rests on: those commands' modules import with torch and transformers missing."""
    code = (
        "import sys\n"
        "for name in ('torch', 'transformers', 'safetensors'): sys.modules[name] = None\n"
        "import pipeline.cli.main, pipeline.api.server, pipeline.ingest.http, pipeline.ingest.producer\n"
        "import pipeline.stores.clickhouse.migrations, pipeline.stores.clickhouse.engines\n"
        # The storing worker of the GPU overlay runs the slim image: its agent and detectors need no model.
        "from pipeline.settings import Settings\n"
        "from workers.app import Worker\n"
        "worker = Worker(Settings(worker_agents='aggregate'))\n"
        "assert worker.stores and not worker.scores\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def status_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (204, 0), (503, 1), (404, 1)])
def test_the_image_healthcheck_exits_by_the_answer(status_server: str, status: int, code: int) -> None:
    script = REPO / "deploy" / "healthcheck.py"
    result = subprocess.run([sys.executable, str(script), f"{status_server}/{status}"], capture_output=True, timeout=30)
    assert result.returncode == code


def test_the_image_healthcheck_fails_when_nothing_listens() -> None:
    script = REPO / "deploy" / "healthcheck.py"
    result = subprocess.run(
        [sys.executable, str(script), "http://127.0.0.1:9/healthz"], capture_output=True, timeout=30
    )
    assert result.returncode == 1 and b"unhealthy" in result.stderr
