from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = "docker-compose is not installed: run `apt-get install -y docker-compose` (Debian) and retry"


def compose(*args: str, secret_key: str | None = "compose-test-secret-0123456789") -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(INSTALL_HINT)
    # Hermetic: no ./.env, no COMPOSE_* variables from the caller's shell.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    if secret_key is not None:
        env["DEALERCARE_SECRET_KEY"] = secret_key
    with tempfile.TemporaryDirectory() as scratch:
        empty_env_file = Path(scratch) / "empty.env"
        empty_env_file.touch()
        return subprocess.run(
            [binary, "--env-file", str(empty_env_file), "-f", "docker-compose.yml", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def resolved() -> dict:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")

    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    result = compose("config", "-q", secret_key=None)

    assert result.returncode != 0
    assert "DEALERCARE_SECRET_KEY" in result.stderr


def test_app_waits_for_healthy_databases_and_a_completed_migration() -> None:
    services = resolved()["services"]

    assert services["app"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert services["migrate"]["command"] == "dealercare db upgrade"
    assert "/healthz" in " ".join(services["app"]["healthcheck"]["test"])
    assert services["postgres"]["healthcheck"] and services["redis"]["healthcheck"]


def test_api_and_worker_share_production_settings() -> None:
    services = resolved()["services"]

    for name in ("app", "worker", "migrate"):
        environment = services[name]["environment"]
        assert environment["DEALERCARE_DATABASE_URL"] == "postgresql://dealercare:dealercare@postgres:5432/dealercare"
        assert environment["DEALERCARE_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["DEALERCARE_EMBEDDED_WORKER"] == "false"
    assert services["worker"]["command"] == "dealercare worker"


def test_rasa_runs_only_in_its_profile() -> None:
    services = resolved()["services"]

    assert services["rasa"]["profiles"] == ["rasa"]
    assert all("profiles" not in spec for name, spec in services.items() if name != "rasa")
