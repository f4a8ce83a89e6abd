"""docker-compose.yml has the topology docs/service.md describes (structure, not a run).

When a ``docker-compose`` or ``docker compose`` binary is installed, the file is
also validated by it (``config``); the structural checks never depend on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"postgres", "redis", "api", "worker-gpu", "worker-cpu", "beat"}
S3_SERVICES = {"minio", "minio-init"}  # optional: profile "s3"
APP_SERVICES = ("api", "worker-gpu", "worker-cpu", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_services_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES | S3_SERVICES
    assert set(compose["volumes"]) >= {"pgdata", "redisdata", "artifacts"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    for name in APP_SERVICES:  # uploads written by the API are read by the workers
        assert "artifacts:/var/lib/biasaudit" in services[name]["volumes"], name


def test_redis_persists_with_aof(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    text = " ".join(command) if isinstance(command, list) else command
    assert "--appendonly yes" in text


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":  # one-shot set-up (minio-init)
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
    api_check = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert "/healthz" in api_check
    for name, queue in (("worker-gpu", "gpu"), ("worker-cpu", "cpu"), ("beat", "beat")):
        test = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert f"ping -d {queue}@" in test, name


def test_app_services_wait_for_healthy_stores(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_gpu_worker_reserves_an_nvidia_gpu_and_runs_cuda_image(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert gpu["command"] == ["biasaudit", "worker", "--queues", "gpu"]
    assert compose["services"]["worker-cpu"]["command"] == [
        "biasaudit",
        "worker",
        "--queues",
        "cpu",
    ]
    assert compose["services"]["beat"]["command"] == ["biasaudit", "beat"]
    assert compose["services"]["api"]["command"][:2] == ["biasaudit", "serve"]
    for name in ("api", "worker-cpu", "beat"):
        assert compose["services"][name]["build"]["dockerfile"] == "docker/Dockerfile"


def test_configuration_is_biasaudit_variables(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        for key in ("DATABASE_URL", "BROKER_URL", "ARTIFACT_DIR", "SECRET_KEY", "ENVIRONMENT"):
            assert f"BIASAUDIT_{key}" in env, (name, key)
        assert env["BIASAUDIT_BROKER_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["BIASAUDIT_DATABASE_URL"]
        assert env["BIASAUDIT_ENVIRONMENT"] == "production"
        # no default secret: compose refuses to start without one
        assert env["BIASAUDIT_SECRET_KEY"].startswith("${BIASAUDIT_SECRET_KEY:?")
    for name in ("worker-gpu", "worker-cpu"):  # warm shutdown gets time to finish an audit
        assert compose["services"][name]["stop_grace_period"]


def test_object_store_is_optional_under_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in S3_SERVICES:
        assert services[name]["profiles"] == ["s3"], name
        assert "${MINIO_ROOT_PASSWORD:-" in services[name]["environment"]["MINIO_ROOT_PASSWORD"]
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")  # pinned, not latest
    assert "objects:/data" in services["minio"]["volumes"] and "objects" in compose["volumes"]
    init = services["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(init["entrypoint"])
    assert "mc mb --ignore-existing local/biasaudit" in script
    assert '--prefix "data/.uploads/"' in script  # abandoned direct uploads expire
    for name in APP_SERVICES:  # off unless BIASAUDIT_STORAGE_URL is given
        env = services[name]["environment"]
        assert env["BIASAUDIT_STORAGE_URL"] == "${BIASAUDIT_STORAGE_URL:-}", name
        assert "BIASAUDIT_STORAGE_SECRET_ACCESS_KEY" in env
        assert "minio" not in services[name].get("depends_on", {})


def test_dockerfiles_pin_dependencies_and_pick_torch_builds() -> None:
    cpu = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    gpu = (ROOT / "docker" / "Dockerfile.gpu").read_text(encoding="utf-8")
    for text in (cpu, gpu):
        assert "-c constraints.txt" in text
        assert "USER biasaudit" in text
    assert "download.pytorch.org/whl/cpu" in cpu
    assert "download.pytorch.org/whl/cu" in gpu and "torch.version.cuda" in gpu
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored


def _compose_binary() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_config_validates_when_a_binary_is_installed(tmp_path: Path) -> None:
    binary = _compose_binary()
    if binary is None:  # nothing to run: the structural tests above still hold
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIASAUDIT_")}
    env["BIASAUDIT_SECRET_KEY"] = "compose-config-test"
    ok = subprocess.run(
        [*binary, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)
    assert set(resolved["services"]) == SERVICES  # the s3 profile is off by default
    env.pop("BIASAUDIT_SECRET_KEY")
    refused = subprocess.run(
        [*binary, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert refused.returncode != 0 and "BIASAUDIT_SECRET_KEY" in refused.stderr
