"""Operations endpoints: liveness, readiness (database and schema) and Prometheus metrics."""
from __future__ import annotations

import logging
from functools import lru_cache

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text

from bot.db import Database
from bot.migrate import MIGRATIONS

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"], include_in_schema=False)


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """Returns the head revisions of bot/migrations, read from the scripts once per process."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Answers while the process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Answers 200 when the database answers and is at the newest schema, else 503 saying why."""
    db: Database = request.app.state.db
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = frozenset(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # noqa: BLE001  (any failure to talk to the database means: not ready)
        log.warning("readiness: database check failed", extra={"error": type(exc).__name__})
        return _unready(database=f"failed: {type(exc).__name__}")
    try:
        heads = migration_heads()
    except Exception as exc:  # noqa: BLE001
        log.error("readiness: cannot read the migration scripts", extra={"error": type(exc).__name__})
        return _unready(database="ok", migrations=f"failed: cannot read migration scripts ({type(exc).__name__})")
    if current != heads:
        found = ", ".join(sorted(current)) or "none"
        return _unready(database="ok", migrations=f"failed: database at {found}, code expects {', '.join(sorted(heads))}")
    return JSONResponse({"status": "ok", "checks": {"database": "ok", "migrations": "ok"}})


def _unready(**checks: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Exposes the process's Prometheus metrics, in the format the scraper asks for."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(REGISTRY), headers={"Content-Type": content_type})
