"""Alembic environment: the URL comes from the settings, or from the caller's Config."""
from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from bot.db import make_engine
from bot.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bot.settings import get_settings

    return get_settings().database_url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    # Migrations must not import model code: our UTC decorator is a plain timestamptz there.
    if type_ == "type" and type(obj).__name__ == "UTC":
        return "sa.DateTime(timezone=True)"
    return False


# APScheduler creates and owns its job store table (scheduler/service.py): not ours to migrate.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
