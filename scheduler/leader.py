"""Exactly one scheduler leads, however many worker processes run.

APScheduler 3 cannot share a job store between processes: two running schedulers would both run
every job. So a scheduler first wins leadership and only then starts APScheduler:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its
  own for as long as the process leads. When the leader dies, even by SIGKILL, its connection
  closes and PostgreSQL releases the lock; a standby that polls every `poll` seconds takes over.
- SQLite (one machine, the embedded demo): an exclusive `flock` on a file beside the database,
  which the kernel releases when the process dies.

A leader checks it still holds the lock on every poll (its connection may have been cut); if not,
it stops its scheduler at once and becomes a standby.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from bot.db import Database

log = logging.getLogger(__name__)

# pg_advisory_lock(class, key) space: the class names what is locked (see bot/effects.py's 71001)
LEADER_LOCK = (71002, 1)


class Leadership:
    """The scheduler lock: `acquire()` without waiting, `held()` to check, `release()`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._file: int | None = None

    @property
    def leading(self) -> bool:
        return self._conn is not None or self._file is not None

    def acquire(self) -> bool:
        """Tries to take the lock; True when this process now leads (or already did)."""
        if self.leading:
            return self.held()
        if self.db.is_postgres:
            return self._acquire_postgres()
        return self._acquire_file()

    def held(self) -> bool:
        """Whether this process still leads; drops leadership when its lock connection is gone."""
        if self._file is not None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).one()
            return True
        except Exception:  # noqa: BLE001  (any failure: the lock may be gone with the connection)
            log.warning("scheduler lock connection lost: no longer leading")
            self._drop_connection()
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": LEADER_LOCK[0], "k": LEADER_LOCK[1]})
            except Exception:  # noqa: BLE001
                log.warning("could not release the scheduler lock; closing its connection releases it")
            self._drop_connection()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            os.close(self._file)
            self._file = None

    def _acquire_postgres(self) -> bool:
        # its own connection, outside the pool's reach: a pooled one could be handed to a
        # request, and closing it would end the lock
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            won = conn.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": LEADER_LOCK[0], "k": LEADER_LOCK[1]}).scalar()
        except Exception:
            conn.close()
            raise
        if not won:
            conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self) -> bool:
        path = lock_file(self.db.url)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._file = fd
        return True

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back into the pool
                conn.close()
            except Exception:
                log.debug("closing the lost lock connection failed", exc_info=True)


def lock_file(url: str) -> Path:
    """The SQLite database's scheduler lock file (beside the database file)."""
    database = make_url(url).database or ""
    if not database or database == ":memory:":
        return Path(os.environ.get("TMPDIR", "/tmp")) / f"dealercare-scheduler-{os.getuid()}.lock"
    return Path(database).with_name(Path(database).name + ".scheduler-lock")
