"""The scheduler and dispatcher stopped for two hours while 500 reminders fell due: after the
restart each goes exactly once, and an appointment reminder whose appointment has passed is
cancelled instead of sent. The clock is frozen and moved by hand; WeChat is not involved (the
owners are on SMS, through the fake Twilio)."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import insert, select, text, update

from bot.db import Database
from bot.models import (
    Appointment,
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Customer,
    Outbox,
    OutboxStatus,
    Vehicle,
)
from bot.outbox import Dispatcher
from integrations.twilio.fake_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioAPI
from integrations.twilio.sender import TwilioSender
from scheduler.planner import plan
from scheduler.service import SchedulerService
from tests.factories import make_dealer

pytestmark = pytest.mark.db

# the rules these tests do not count stay quiet (tier care, for one, would greet some owners)
ONLY_OURS = {code: {"enabled": False} for code in ("tier_care", "holiday", "birthday", "first_service", "delivery_callback")}

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 09:00 in Shanghai: the worker stops; it comes back at 11:00
STOPPED = datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
RESTARTED = STOPPED + timedelta(hours=2)
MAINTENANCE, APPOINTMENTS, MOVED = 450, 50, 10


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_stored_jobs(db: Database) -> None:
    with db.transaction() as session:
        session.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))


def seed(db: Database, twilio: FakeTwilioAPI) -> int:
    today = STOPPED.astimezone(SHANGHAI).date()
    with db.transaction() as session:
        dealer = make_dealer(session, slug="gap", care_cap_per_week=5, reminders=ONLY_OURS, quiet_hours=(clock_time(22, 0), clock_time(7, 0)))
        session.add(
            ChannelAccount(
                dealer_id=dealer.id, channel=Channel.sms,
                config={"account_sid": ACCOUNT_SID, "from": "+8675586001234", "api_base": twilio.url},
                secrets={"auth_token": AUTH_TOKEN},
            )
        )
        session.flush()
        owners = MAINTENANCE + APPOINTMENTS
        ids = session.execute(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"dealer_id": dealer.id, "name": f"车主{i}", "phone": f"+86139{i:08d}", "language": "zh"} for i in range(owners)],
        ).scalars().all()
        session.execute(
            insert(ChannelIdentity),
            [{"dealer_id": dealer.id, "customer_id": cid, "channel": Channel.sms, "address": f"+86139{i:08d}"} for i, cid in enumerate(ids)],
        )
        # due in 7 days: the reminder goes today at 10:00, inside the gap
        session.execute(
            insert(Vehicle),
            [
                {"dealer_id": dealer.id, "customer_id": cid, "plate": f"粤A{i:05d}", "last_service_date": today - timedelta(days=173)}
                for i, cid in enumerate(ids[:MAINTENANCE])
            ],
        )
        # appointments at 12:00 and 12:30: their two-hours-ahead reminders fall at 10:00 and 10:30
        session.execute(
            insert(Appointment),
            [
                {
                    "dealer_id": dealer.id, "reference": f"GAP{i:04d}", "customer_id": cid, "service_type": "minor_service",
                    "starts_at": STOPPED + timedelta(hours=3 + (i % 2) / 2), "ends_at": STOPPED + timedelta(hours=4),
                    "status": "booked",
                }
                for i, cid in enumerate(ids[MAINTENANCE:])
            ],
        )
    return dealer.id


def run_service(db: Database, clock: Clock, until: float = 20.0) -> None:
    """Runs the scheduler service until its first planning run has finished, then stops it."""
    planned = threading.Event()

    def planning(db: Database, now: datetime) -> object:
        report = plan(db, now)
        planned.set()
        return report

    service = SchedulerService(db, clock=clock, poll=0.1, plan=planning)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,))
    thread.start()
    try:
        assert planned.wait(until), "the planning run did not happen"
    finally:
        stop.set()
        thread.join(timeout=20)


def two_hours_pass(db: Database) -> None:
    """APScheduler keeps real time: move the stored job's next run two hours into the past, as if
    the service had been down that long."""
    store = SQLAlchemyJobStore(engine=db.engine, tablename="apscheduler_jobs")
    store.start(BackgroundScheduler(), "default")
    job = store.lookup_job("plan")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(hours=2))
    store.update_job(job)


def dispatch_all(db: Database, clock: Clock) -> None:
    dispatcher = Dispatcher(db=db, senders={Channel.sms: TwilioSender(db, public_url="https://care.example.cn", clock=clock)}, clock=clock)
    while dispatcher.run_once():
        pass


def test_reminders_due_while_the_worker_was_down_go_once_after_restart_and_passed_appointments_are_skipped(
    db: Database, twilio: FakeTwilioAPI
) -> None:
    dealer_id = seed(db, twilio)
    clock = Clock(STOPPED)
    run_service(db, clock)
    dispatch_all(db, clock)
    assert twilio.messages == []  # nothing was due yet at 09:00

    # the worker is down from 09:00 to 11:00; meanwhile ten appointments were moved to 10:15
    with db.transaction() as session:
        moved = session.scalars(select(Appointment.id).where(Appointment.dealer_id == dealer_id).order_by(Appointment.id).limit(MOVED)).all()
        session.execute(
            update(Appointment).where(Appointment.id.in_(moved)).values(starts_at=STOPPED + timedelta(hours=1, minutes=15))
        )
    clock.now = RESTARTED
    two_hours_pass(db)
    run_service(db, clock)  # the missed planning run happens at start
    assert plan(db, clock.now).rows_written == 0  # and again, or on a second machine, adds nothing
    dispatch_all(db, clock)

    with db.sessions() as session:
        rows = session.execute(select(Outbox.kind, Outbox.status, Outbox.data)).all()
    by_kind = Counter((row.kind, row.status) for row in rows)
    assert by_kind[("reminder:maintenance", OutboxStatus.sent)] == MAINTENANCE
    assert by_kind[("reminder:appointment_soon", OutboxStatus.sent)] == APPOINTMENTS - MOVED
    cancelled = [row for row in rows if row.kind == "reminder:appointment_soon" and row.status == OutboxStatus.cancelled]
    assert len(cancelled) == MOVED and {row.data["appointment_id"] for row in cancelled} == set(moved)
    per_phone = Counter(message.to for message in twilio.messages)
    assert len(per_phone) == MAINTENANCE + APPOINTMENTS - MOVED and set(per_phone.values()) == {1}
