"""Exactly one scheduler leads; a standby takes over when the leader goes; a missed run happens once."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from bot.db import Database
from bot.models import utcnow
from scheduler import service as scheduler_service
from scheduler.leader import Leadership

pytestmark = pytest.mark.db


@pytest.fixture(autouse=True)
def _no_stored_jobs(db: Database) -> None:
    """Each test starts with an empty job store (the session's database outlives a test)."""
    with db.transaction() as session:
        session.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))


def test_one_leader_at_a_time_and_the_next_takes_over_when_it_lets_go(db: Database) -> None:
    first, second = Leadership(db), Leadership(db)

    assert first.acquire()
    assert not second.acquire()
    assert first.held() and first.acquire()  # asking again while leading keeps the lead

    first.release()
    assert second.acquire()
    second.release()


def test_a_leader_whose_lock_connection_was_cut_knows_it_no_longer_leads(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("the lock is a connection only on PostgreSQL (SQLite: a file lock the kernel holds)")
    leader, standby = Leadership(db), Leadership(db)
    assert leader.acquire()
    pid = leader._conn.execute(text("SELECT pg_backend_pid()")).scalar()  # type: ignore[union-attr]
    with db.engine.connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    assert not leader.held()
    assert standby.acquire()
    standby.release()


def test_two_services_run_the_jobs_once_between_them(db: Database) -> None:
    runs: list[str] = []

    def plan(db: Database, now: object) -> _Report:
        runs.append(threading.current_thread().name)
        return _Report()

    a = scheduler_service.SchedulerService(db, poll=0.1, plan=plan)
    b = scheduler_service.SchedulerService(db, poll=0.1, plan=plan)
    stop_a, stop_b = threading.Event(), threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop_a,)), threading.Thread(target=b.run, args=(stop_b,))]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: a.led.is_set() or b.led.is_set())
        _wait(lambda: len(runs) >= 1)
        time.sleep(0.5)
        assert a.led.is_set() != b.led.is_set()  # exactly one leads
        assert len(runs) == 1  # the first planning run, once
        stop_leader, standby = (stop_a, b) if a.led.is_set() else (stop_b, a)

        stop_leader.set()  # the leader goes away

        _wait(lambda: standby.led.is_set())
    finally:
        stop_a.set()
        stop_b.set()
        for thread in threads:
            thread.join(timeout=10)


def test_a_planning_run_missed_while_the_service_was_down_happens_once_at_start(db: Database) -> None:
    runs: list[object] = []

    def plan(db: Database, now: object) -> _Report:
        runs.append(now)
        return _Report()

    first = scheduler_service.SchedulerService(db, poll=0.1, plan=plan)
    stop = threading.Event()
    thread = threading.Thread(target=first.run, args=(stop,))
    thread.start()
    _wait(lambda: len(runs) == 1)
    stop.set()
    thread.join(timeout=10)
    # the service was down for two hours: the stored job's next run is long past
    store = SQLAlchemyJobStore(engine=db.engine, tablename="apscheduler_jobs")
    store.start(BackgroundScheduler(), "default")  # the store only, no scheduler running
    job = store.lookup_job("plan")
    job._modify(next_run_time=utcnow() - timedelta(hours=2))
    store.update_job(job)

    again = scheduler_service.SchedulerService(db, poll=0.1, plan=plan)
    stop = threading.Event()
    thread = threading.Thread(target=again.run, args=(stop,))
    thread.start()
    try:
        _wait(lambda: len(runs) >= 2)
        time.sleep(1.0)
        assert len(runs) == 2  # once, not once per missed interval, and not skipped
    finally:
        stop.set()
        thread.join(timeout=10)


class _Report:
    rows_written = 0
    seconds = 0.0

    def __init__(self) -> None:
        self.by_rule: dict[str, int] = {}


def _wait(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
