"""Alembic: the schema goes up, down and up again, and the models match the migrations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from bot import migrate
from bot.db import Database
from bot.models import Base

ROOT = Path(__file__).resolve().parents[2]


def alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the alembic command line from the repo root, as an operator would."""
    env = dict(os.environ, DEALERCARE_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_upgrade_downgrade_upgrade_and_check_agree_with_models(db: Database) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    db.engine.dispose()  # the downgrade drops tables our pooled connections may hold

    for step in (["downgrade", "base"], ["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"], ["check"]):
        result = alembic(url, *step)
        assert result.returncode == 0, f"alembic {' '.join(step)} failed:\n{result.stdout}\n{result.stderr}"

    assert "No new upgrade operations detected" in result.stdout + result.stderr
    tables = set(inspect(db.engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert migrate.current_revision(db.engine) == migrate.head_revision()


def test_every_owner_data_table_carries_dealer_id() -> None:
    exempt = {"dealer"}
    missing = [t.name for t in Base.metadata.sorted_tables if t.name not in exempt and "dealer_id" not in t.c]
    assert missing == []
