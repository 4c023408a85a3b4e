"""deploy/compose.yaml, checked against what the code reads: every pgqueue setting a service
sets is a real one with a valid value, commands are real commands, ports, credentials, grace
periods and memory agree across services, and the files it mounts exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pgqueue.settings import Settings, env_name, load_settings
from pgqueue.storage import s3
from tests.workers import ROOT

DEPLOY = ROOT / "deploy"
PGQUEUE_SERVICES = ("migrate", "worker")
SETTING_NAMES = {env_name(name) for name in Settings.model_fields}
# Variables the code reads outside Settings: the S3 credentials (pgqueue.storage.s3).
OTHER_NAMES = set(s3._SECRET_VARIABLES)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in services()[service].get("environment", {}).items()}


def settings_of(service: str) -> Settings:
    return load_settings(environ=environment(service))


def test_the_stack_has_every_part() -> None:
    assert set(services()) >= {"postgres", "minio", "migrate", "worker", "prometheus", "grafana"}
    assert services()["worker"]["deploy"]["replicas"] == 3


@pytest.mark.parametrize("service", PGQUEUE_SERVICES)
def test_pgqueue_services_set_only_real_settings_with_valid_values(service: str) -> None:
    env = environment(service)
    unknown = set(env) - SETTING_NAMES - OTHER_NAMES
    assert not unknown, f"{service} sets variables pgqueue never reads: {sorted(unknown)}"
    settings = settings_of(service)  # raises SettingsError naming a bad value
    assert settings.database_url and settings.schema_name == "pgqueue"


@pytest.mark.parametrize("service", PGQUEUE_SERVICES)
def test_pgqueue_services_run_real_commands(service: str) -> None:
    command = services()[service]["command"]
    result = subprocess.run([sys.executable, "-m", "pgqueue.cli", *command, "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert services()[service]["build"]["context"] == ".."
    assert (DEPLOY / services()[service]["build"]["context"] / "Dockerfile").is_file()


def test_workers_reach_postgres_as_the_owner_role_the_init_script_creates() -> None:
    url = urlsplit(settings_of("worker").database_url or "")
    postgres = services()["postgres"]
    assert url.hostname == "postgres" and url.port == 5432
    assert url.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    roles = (DEPLOY / "postgres" / "roles.sql").read_text()
    assert re.search(rf"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}' NOSUPERUSER", roles)
    assert f"CREATE SCHEMA {settings_of('worker').schema_name} AUTHORIZATION {url.username};" in roles
    assert url.username != postgres["environment"]["POSTGRES_USER"], "not the superuser"
    assert environment("migrate")["DATABASE_URL"] == environment("worker")["DATABASE_URL"]


def test_workers_reach_minio_with_its_credentials() -> None:
    env, minio = environment("worker"), services()["minio"]
    endpoint = urlsplit(settings_of("worker").s3_endpoint or "")
    assert endpoint.hostname == "minio"
    assert f":{endpoint.port}" in " ".join(f"{p}" for p in minio["ports"])
    assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def mebibytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([MG])", size)
    assert match, size
    return int(match.group(1)) * (1024 if match.group(2) == "G" else 1)


def test_workers_get_time_to_finish_and_memory_for_every_slot() -> None:
    worker, settings = services()["worker"], settings_of("worker")
    assert seconds(worker["stop_grace_period"]) > settings.shutdown_grace
    limit = mebibytes(worker["deploy"]["resources"]["limits"]["memory"])
    assert limit >= settings.slots * settings.memory_limit_mb + 256


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    prometheus = services()["prometheus"]
    source = next(volume.split(":")[0] for volume in prometheus["volumes"]
                  if volume.split(":")[1] == "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((DEPLOY / source).read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert discovery["port"] == settings_of("worker").metrics_port
    assert str(discovery["port"]) in services()["worker"]["expose"]


def test_grafana_provisions_the_dashboard_and_its_datasource() -> None:
    grafana = services()["grafana"]
    mounts = {target: (DEPLOY / source).resolve()
              for source, target, *_ in (volume.split(":") for volume in grafana["volumes"])}
    provisioning = mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "pgqueue.yaml").read_text())["providers"]
    folder = Path(providers[0]["options"]["path"])
    assert mounts[str(folder)] == (ROOT / "dashboards").resolve()
    dashboard = json.loads((ROOT / "dashboards" / "pgqueue.json").read_text())
    wanted = {variable["query"] for variable in dashboard["templating"]["list"]
              if variable["type"] == "datasource"}
    sources = yaml.safe_load((provisioning / "datasources" / "pgqueue.yaml").read_text())["datasources"]
    assert wanted <= {source["type"] for source in sources}
    postgres = next(s for s in sources if s["type"] == "grafana-postgresql-datasource")
    assert postgres["url"] == "postgres:5432"
    assert postgres["jsonData"]["database"] == services()["postgres"]["environment"]["POSTGRES_DB"]
    roles = (DEPLOY / "postgres" / "roles.sql").read_text()
    assert f"CREATE ROLE {postgres['user']} LOGIN PASSWORD '{postgres['secureJsonData']['password']}'" in roles


def test_every_mounted_file_exists_and_every_dependency_is_a_service() -> None:
    names = set(services())
    volumes = set(compose().get("volumes", {}))
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in volumes or (DEPLOY / source).exists(), f"{name}: {source} is missing"
        assert set(service.get("depends_on", [])) <= names, name
