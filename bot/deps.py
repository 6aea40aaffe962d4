"""FastAPI dependencies as Annotated aliases; tests swap them with dependency_overrides."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bot.db import Database
from bot.pipeline import Pipeline
from bot.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.db


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    """Yields a session whose transaction commits when the request handler returns."""
    with db.transaction() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SessionDep = Annotated[Session, Depends(get_session)]
