"""The scheduler: APScheduler's jobs, run by whichever process leads (scheduler/leader.py).

Jobs only write rows (the planner writes outbox rows; the dispatcher sends them), so a job that
runs late or twice costs nothing but time: every row has a dedupe key.

- `plan` every PLAN_EVERY: scheduler.planner.plan over every dealer.
- `housekeeping` daily: forgets old webhook replay records.

The job store is persisted (APScheduler's SQLAlchemy store, table `apscheduler_jobs`) with
`coalesce` and a misfire grace of MISFIRE_GRACE: after the service was down, a job that should
have run meanwhile runs once at start-up, instead of being skipped as APScheduler's 1-second
default grace would do. The planner looks back a few days, so what fell due in the gap is
planned then, and sent once.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import delete

from bot.db import Database
from bot.models import WebhookRequest, utcnow
from scheduler.leader import Leadership

log = logging.getLogger(__name__)

PLAN_EVERY = timedelta(minutes=10)
MISFIRE_GRACE = timedelta(hours=12)
POLL = 15.0  # seconds between a standby's tries, and a leader's checks that it still leads
WEBHOOK_MEMORY = timedelta(days=2)

# The job functions are found by name in the persisted store, so they are module functions;
# they reach the running service through this (one leading service per process).
_active: SchedulerService | None = None


def plan_job() -> None:
    service = _active
    if service is None:
        return
    report = service.plan(service.db, service.clock())
    log.info("planned", extra={"rows": report.rows_written, "by_rule": report.by_rule, "seconds": round(report.seconds, 2)})


def housekeeping_job() -> None:
    service = _active
    if service is None:
        return
    with service.db.transaction() as session:
        session.execute(delete(WebhookRequest).where(WebhookRequest.created_at < service.clock() - WEBHOOK_MEMORY))


def _planner(db: Database, now: datetime) -> Any:
    from scheduler.planner import plan

    return plan(db, now)


class SchedulerService:
    """Stands by until it leads, then runs APScheduler until told to stop or it loses the lock."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        plan_every: timedelta = PLAN_EVERY,
        poll: float = POLL,
        plan: Callable[[Database, datetime], Any] | None = None,
    ) -> None:
        self.db = db
        self.plan = plan or _planner
        self.clock = clock
        self.plan_every = plan_every
        self.poll = poll
        self.leadership = Leadership(db)
        self.scheduler: BackgroundScheduler | None = None
        self.led = threading.Event()  # set once this service has led (tests wait on it)

    def run(self, stop: threading.Event) -> None:
        """The service's loop: lead when possible, else stand by; returns when `stop` is set."""
        try:
            while not stop.is_set():
                if self.scheduler is None:
                    if self._try_lead():
                        self._start()
                elif not self.leadership.held():
                    log.warning("lost the scheduler lock: stopping jobs, standing by")
                    self._stop()
                stop.wait(self.poll)
        finally:
            self._stop()
            self.leadership.release()

    def _try_lead(self) -> bool:
        try:
            return self.leadership.acquire()
        except Exception:
            log.exception("could not try the scheduler lock")
            return False

    def _start(self) -> None:
        global _active
        _active = self
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.db.engine, tablename="apscheduler_jobs")},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(MISFIRE_GRACE.total_seconds())},
            timezone="UTC",
        )
        scheduler.start(paused=True)
        # replace_existing keeps a stored job's next run time only if the job changes; a job
        # left from before keeps its (possibly missed) schedule, which is what makes a missed
        # run happen once now
        if scheduler.get_job("plan") is None:
            scheduler.add_job(plan_job, IntervalTrigger(seconds=self.plan_every.total_seconds()), id="plan", next_run_time=utcnow())
        if scheduler.get_job("housekeeping") is None:
            scheduler.add_job(housekeeping_job, CronTrigger(hour=19, minute=30), id="housekeeping")  # 03:30 in China
        scheduler.resume()
        self.scheduler = scheduler
        self.led.set()
        log.info("leading the scheduler")

    def _stop(self) -> None:
        global _active
        if self.scheduler is not None:
            try:
                self.scheduler.shutdown(wait=True)
            except Exception:
                log.exception("scheduler did not shut down cleanly")
            self.scheduler = None
        if _active is self:
            _active = None


def start_in_thread(db: Database, **kwargs: object) -> tuple[threading.Thread, threading.Event, SchedulerService]:
    """Starts the scheduler service on a daemon thread; returns it, its stop event and the service."""
    stop = threading.Event()
    service = SchedulerService(db, **kwargs)  # type: ignore[arg-type]
    thread = threading.Thread(target=service.run, args=(stop,), name="dealercare-scheduler", daemon=True)
    thread.start()
    return thread, stop, service
