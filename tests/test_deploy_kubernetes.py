"""deploy/kubernetes/: the core kinds validated by kubernetes-validate against the API schemas,
their settings checked against the code, and the KEDA scaler's query run on a real database
migrated into the schema the manifests name, so it cannot drift from the views."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import psycopg
import pytest
import yaml
from psycopg.rows import dict_row

from pgqueue.database import connect_options
from pgqueue.migrate import upgrade
from pgqueue.settings import Settings, env_name, load_settings
from tests import database
from tests.factories import make_job
from tests.workers import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest and newest Kubernetes minor versions the schemas are checked against.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# The postgresql scaler's metadata, as KEDA documents it (keda.sh/docs/scalers/postgresql).
KEDA_POSTGRESQL_KEYS = {
    "query", "targetQueryValue", "activationTargetQueryValue", "connectionFromEnv", "host",
    "port", "userName", "dbName", "sslmode", "passwordFromEnv", "metricName",
}


def resources() -> dict[str, dict[str, Any]]:
    """Every manifest by kind (one resource per file)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    return found


def worker_container() -> dict[str, Any]:
    (container,) = resources()["Deployment"]["spec"]["template"]["spec"]["containers"]
    container_: dict[str, Any] = container
    return container_


def worker_settings() -> Settings:
    environ = {**resources()["ConfigMap"]["data"], "DATABASE_URL": "postgresql://db/pgqueue"}
    return load_settings(environ=environ)


def mebibytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, quantity
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_validate_against_the_kubernetes_schemas(version: str) -> None:
    core = {kind: r for kind, r in resources().items() if kind not in ("ScaledObject", "Kustomization")}
    assert set(core) == {"ConfigMap", "Job", "Deployment", "PodDisruptionBudget"}
    for kind, resource in core.items():
        kubernetes_validate.validate(resource, version, strict=True)  # raises, naming the field
        assert resource["metadata"]["name"].startswith("pgqueue"), kind


def test_kustomization_applies_every_manifest() -> None:
    listed = set(resources()["Kustomization"]["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


def test_configmap_sets_only_real_settings_with_valid_values() -> None:
    data = resources()["ConfigMap"]["data"]
    known = {env_name(name) for name in Settings.model_fields}
    assert set(data) <= known, set(data) - known
    assert worker_settings().schema_name == "pgqueue"


def test_workers_and_migration_share_image_settings_and_secret() -> None:
    job = resources()["Job"]["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    worker = worker_container()
    assert migrate["image"] == worker["image"]
    assert migrate["envFrom"] == worker["envFrom"]
    assert migrate["env"] == worker["env"]
    assert worker["envFrom"][0]["configMapRef"]["name"] == resources()["ConfigMap"]["metadata"]["name"]
    for container in (migrate, worker):
        result = subprocess.run([sys.executable, "-m", "pgqueue.cli", *container["args"], "--help"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert result.returncode == 0, result.stderr
    image_user = re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert image_user
    for pod in (job, resources()["Deployment"]["spec"]["template"]["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == image_user.group(1)


def test_workers_get_their_grace_memory_for_every_slot_and_probes_on_the_health_endpoints() -> None:
    settings = worker_settings()
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    # After the grace, stopped jobs are handed back and the worker deregisters: give it time.
    assert pod["terminationGracePeriodSeconds"] >= settings.shutdown_grace + 10
    container = worker_container()
    (port,) = container["ports"]
    assert port["containerPort"] == settings.metrics_port
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    assert all(probe["port"] == port["name"] for probe in probes.values())
    # A liveness verdict waits out more than one heartbeat interval.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > settings.heartbeat_interval
    resources_ = container["resources"]
    limit = mebibytes(resources_["limits"]["memory"])
    assert limit >= settings.slots * settings.memory_limit_mb + 256
    assert mebibytes(resources_["requests"]["memory"]) == limit
    assert int(resources_["requests"]["cpu"]) == settings.slots


def test_disruption_budget_and_rollout_cover_the_worker_pods() -> None:
    deployment = resources()["Deployment"]["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= labels.items()
    budget = resources()["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] == 1
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def scaled_object() -> dict[str, Any]:
    return resources()["ScaledObject"]


def test_scaled_object_targets_the_workers_with_a_postgresql_trigger() -> None:
    scaled = scaled_object()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == resources()["Deployment"]["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["pollingInterval"] > 0 and spec["cooldownPeriod"] > 0
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "postgresql"
    metadata = trigger["metadata"]
    assert set(metadata) <= KEDA_POSTGRESQL_KEYS, set(metadata) - KEDA_POSTGRESQL_KEYS
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA metadata are strings"
    assert metadata["connectionFromEnv"] in {env["name"] for env in worker_container()["env"]}
    # One replica per PGQUEUE_SLOTS wanted slots.
    assert int(metadata["targetQueryValue"]) == worker_settings().slots
    assert "pgqueue_queue_lag" in metadata["query"]


@pytest.fixture
def scaler_db(pg_server: database.Server) -> Iterator[str]:
    """A fresh database migrated into the schema the manifests name, as in production."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.url_for(name)
    try:
        upgrade(url, worker_settings().schema_name)
        yield url
    finally:
        database.drop(pg_server, url)


def test_the_scaler_query_counts_due_and_running_jobs_on_a_real_database(scaler_db: str) -> None:
    query = scaled_object()["spec"]["triggers"][0]["metadata"]["query"]
    schema = worker_settings().schema_name
    # KEDA's connection has no search path of pgqueue's: the query must name the schema.
    with psycopg.connect(scaler_db, autocommit=True, row_factory=dict_row) as scaler, \
         psycopg.connect(scaler_db, autocommit=True, row_factory=dict_row,
                         **connect_options(schema)) as conn:
        assert scaler.execute("SHOW search_path").fetchone() == {"search_path": '"$user", public'}

        def wanted() -> Any:
            (row,) = scaler.execute(query).fetchall()
            (value,) = row.values()
            return value

        assert wanted() == 0
        for _ in range(3):
            make_job(conn, "pending")
        make_job(conn, "pending", next_retry_at="2999-01-01T00:00:00Z")  # not due: no slot yet
        for _ in range(2):
            make_job(conn, "processing")
        for status in ("completed", "failed", "cancelled"):
            make_job(conn, status)
        assert wanted() == 5
        counted = conn.execute(
            "SELECT (SELECT due_jobs FROM pgqueue_queue_lag) AS due, "
            "count(*) FILTER (WHERE status = 'processing') AS running FROM extraction_jobs"
        ).fetchone()
        assert counted == {"due": 3, "running": 2}

