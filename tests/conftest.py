"""Shared fixtures. Every test that takes `db` runs twice: on SQLite and on PostgreSQL.

PostgreSQL comes from DEALERCARE_TEST_POSTGRES_URL (default: the local server's `test`
database); each run creates its own database there and drops it at the end. Without a server
the PostgreSQL half is skipped with a message saying so, unless DEALERCARE_TEST_REQUIRE_POSTGRES=1
(set by CI), which turns the skip into a failure.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot import migrate
from bot.db import Database
from bot.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "DEALERCARE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("DEALERCARE_TEST_REQUIRE_POSTGRES") == "1"
_postgres_skip_reason: list[str] = []


def _postgres_database() -> Iterator[str]:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"dealercare_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001  (any failure means: no PostgreSQL here)
        admin.dispose()
        reason = f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}: {type(exc).__name__}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (DEALERCARE_TEST_REQUIRE_POSTGRES=1)")
        _postgres_skip_reason.append(reason)
        pytest.skip(reason + "; PostgreSQL tests SKIPPED")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database migrated to head, once per test session and kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'dealercare.db'}"
        migrate.upgrade(url)
        yield url
        return
    gen = _postgres_database()
    url = next(gen)
    migrate.upgrade(url)
    yield url
    gen.close()


@pytest.fixture(scope="session")
def _session_db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def db(_session_db: Database) -> Iterator[Database]:
    """A migrated database emptied before the test (the pipeline commits, so no rollback trick)."""
    _empty(_session_db)
    yield _session_db


def _empty(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if database.is_postgres:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
        # APScheduler's job store (scheduler/service.py) is not a model table: a job stored by one
        # test would otherwise decide when the next test's scheduler first plans
        conn.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))


@pytest.fixture(scope="session")
def nlu(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real built-in NLU, trained once per session."""
    import nlu as nlu_package
    from nlu.builtin import BuiltinNLU

    return BuiltinNLU.load_or_train(Path(nlu_package.__file__).parent / "data", _nlu_cache_dir(tmp_path_factory))


def _nlu_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Reuse a trained model across runs: it retrains by itself when the data hash changes.
    cache = Path(__file__).resolve().parent.parent / "var" / "nlu-test"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return cache
    except OSError:
        return tmp_path_factory.mktemp("nlu")


@pytest.fixture
def settings(database_url: str):  # type: ignore[no-untyped-def]
    from bot.settings import load_settings

    return load_settings(
        database_url=database_url, env="test", log_json=False, embedded_worker=False, secret_key="test-secret-0123456789"
    )


@pytest.fixture
def pipeline(db: Database, nlu):  # type: ignore[no-untyped-def]
    from bot.pipeline import Pipeline

    return Pipeline(db=db, nlu=nlu)


@pytest.fixture
def demo(db: Database):  # type: ignore[no-untyped-def]
    """The database with the demo dealer loaded; returns the dealer."""
    from bot.demo import load_demo

    with db.transaction() as session:
        dealer = load_demo(session)
    return dealer


@pytest.fixture
def app(settings, db: Database, nlu):  # type: ignore[no-untyped-def]
    from bot.app import create_app

    return create_app(settings, db=db, nlu=nlu)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if _postgres_skip_reason:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", yellow=True, bold=True)
        terminalreporter.write_line(_postgres_skip_reason[0])
        terminalreporter.write_line("Start PostgreSQL (see README) to run every database test on both databases.")
