from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from bot import metrics, migrate, ops
from bot.db import Database

# -- through the real app (tests/conftest.py: migrated SQLite and PostgreSQL) ----------------------


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ok_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


def test_metrics_are_exposed_in_prometheus_text_format(client: TestClient) -> None:
    metrics.record_inbound("wechat", "booking")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE dealercare_messages_total counter" in response.text
    assert 'dealercare_messages_total{channel="wechat",direction="in",intent="booking"}' in response.text
    assert "# TYPE dealercare_pipeline_seconds histogram" in response.text


def test_metrics_speak_openmetrics_when_the_scraper_asks(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")


def test_app_echoes_the_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "lb-1234"})

    assert response.headers["x-request-id"] == "lb-1234"


# -- the router alone, on states the real app's fixtures never reach -------------------------------


def ops_client(database: Database) -> TestClient:
    app = FastAPI()
    app.include_router(ops.router)
    app.state.db = database
    return TestClient(app)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'ops.db'}")
    yield database
    database.dispose()


def test_readyz_is_ok_once_the_schema_is_at_head(sqlite_db: Database) -> None:
    migrate.upgrade(sqlite_db.url)

    response = ops_client(sqlite_db).get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_is_unavailable_before_the_first_migration(sqlite_db: Database) -> None:
    response = ops_client(sqlite_db).get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].startswith("failed: database at none, code expects ")


def test_readyz_is_unavailable_when_the_schema_is_behind(sqlite_db: Database) -> None:
    migrate.upgrade(sqlite_db.url)
    with sqlite_db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'old0000'"))

    response = ops_client(sqlite_db).get("/readyz")

    assert response.status_code == 503
    assert "database at old0000" in response.json()["checks"]["migrations"]


def test_readyz_is_unavailable_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    database = Database("postgresql+psycopg://dealercare@127.0.0.1:1/dealercare", pool_pre_ping=False)
    try:
        response = ops_client(database).get("/readyz")
    finally:
        database.dispose()

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("failed: ")
    assert "migrations" not in body["checks"]


def test_healthz_needs_no_database() -> None:
    app = FastAPI()
    app.include_router(ops.router)

    response = TestClient(app).get("/healthz")

    assert response.status_code == 200


def test_migration_heads_are_read_once() -> None:
    ops.migration_heads()
    hits = ops.migration_heads.cache_info().hits

    assert ops.migration_heads() == frozenset({migrate.head_revision()})
    assert ops.migration_heads.cache_info().hits == hits + 1
