"""The engine and sessions. Callers own the transaction: helpers add and flush, never commit."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Creates an engine tuned for the database behind the URL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _sqlite_serialised_writes(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        # No ping on checkout: it was a round trip on every message, a tenth of the pipeline's
        # time. A connection the server dropped fails once instead; SQLAlchemy then discards
        # the whole pool, and the pipeline runs that message again (storing it is idempotent).
        # Recycling keeps connections younger than any server or proxy idle timeout.
        kwargs.setdefault("pool_pre_ping", False)
        kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def _sqlite_serialised_writes(engine: Engine) -> None:
    # pysqlite opens transactions lazily and as DEFERRED, so two writers that both read first
    # deadlock on the upgrade to a write lock. BEGIN IMMEDIATE takes the write lock up front:
    # on SQLite, that lock is what "lock the conversation row" means. WAL lets readers go on.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory, shared by the app, the CLI and the worker."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Opens a session and commits once at the end, rolling back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def transaction_on(self, conn: Connection) -> Iterator[Session]:
        """A transaction on a connection the caller holds, with a session bound to it.

        For hot paths that run several transactions back to back: they keep one pooled
        connection instead of checking one out (and pinging it) for each.
        """
        with conn.begin():  # noqa: SIM117 - the callbacks run after this block commits, outside the session
            with Session(bind=conn, join_transaction_mode="conditional_savepoint") as session:
                yield session
                session.flush()
                callbacks = session.info.pop(AFTER_COMMIT, {})
        # the connection's transaction has committed only here: the session never commits itself
        _run(callbacks)

    def dispose(self) -> None:
        self.engine.dispose()


# -- work that must wait for the commit (a console wake-up must not announce a row that may roll back) --

AFTER_COMMIT = "after_commit_callbacks"


def after_commit(session: Session) -> dict[str, Callable[[], None]]:
    """The callbacks this session runs once its transaction has committed (dropped on rollback), by key."""
    return session.info.setdefault(AFTER_COMMIT, {})


def _run(callbacks: dict[str, Callable[[], None]]) -> None:
    for callback in callbacks.values():
        callback()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    _run(session.info.pop(AFTER_COMMIT, {}))


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, _previous: Any) -> None:
    if not session.in_transaction():  # a savepoint's rollback leaves the outer transaction's work standing
        session.info.pop(AFTER_COMMIT, None)

