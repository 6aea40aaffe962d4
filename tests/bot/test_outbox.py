"""The outbox dispatcher: each due row is sent once, failures are retried and then given up."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, Outbox, OutboxStatus
from bot.outbox import DispatchPolicy, Dispatcher, SendError
from tests.factories import make_dealer

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


class FakeSender:
    """Records what it sends; fails the first `fail` sends with the given error."""

    def __init__(self, fail: int = 0, error: SendError | None = None, sent_before: set[int] | None = None) -> None:
        self.sent: list[int] = []
        self.recovered: list[int] = []
        self.fail = fail
        self.error = error or SendError("503 from provider")
        self.sent_before = sent_before or set()
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> str:
        with self._lock:
            if self.fail:
                self.fail -= 1
                raise self.error
            self.sent.append(message.outbox_id)
        return f"P{message.outbox_id}"

    def recover(self, message: OutboundMessage) -> str | None:
        self.recovered.append(message.outbox_id)
        return f"P{message.outbox_id}" if message.outbox_id in self.sent_before else None


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_rows(db: Database, count: int, *, due: datetime = NOW, status: OutboxStatus = OutboxStatus.pending) -> list[int]:
    with db.transaction() as session:
        dealer = make_dealer(session)
        rows = [
            Outbox(dealer_id=dealer.id, dedupe_key=f"test:{i}", kind="reminder:test", channel=Channel.sms,
                   address="+8613800138000", body=f"提醒 {i}", not_before=due, status=status)
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def outbox(db: Database) -> list[Outbox]:
    with db.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_due_row_is_sent_once_and_its_provider_id_recorded(db: Database) -> None:
    [row_id] = add_rows(db, 1)
    sender = FakeSender()
    dispatcher = Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW))

    assert dispatcher.run_once() == 1
    assert dispatcher.run_once() == 0

    assert sender.sent == [row_id]
    [row] = outbox(db)
    assert row.status == OutboxStatus.sent and row.provider_id == f"P{row_id}" and row.attempts == 1


def test_row_not_yet_due_waits(db: Database) -> None:
    add_rows(db, 1, due=NOW + timedelta(minutes=1))
    sender = FakeSender()
    assert Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW)).run_once() == 0
    assert sender.sent == []


def test_failed_send_is_retried_with_backoff_and_then_succeeds(db: Database) -> None:
    add_rows(db, 1)
    clock = Clock(NOW)
    sender = FakeSender(fail=1)
    dispatcher = Dispatcher(db=db, senders={Channel.sms: sender}, clock=clock)

    dispatcher.run_once()
    [row] = outbox(db)
    assert row.status == OutboxStatus.pending and row.last_error == "503 from provider"
    assert row.not_before > NOW, "retried later, not at once"
    assert dispatcher.run_once() == 0

    clock.now = row.not_before
    dispatcher.run_once()
    [row] = outbox(db)
    assert row.status == OutboxStatus.sent and row.attempts == 2 and len(sender.sent) == 1


def test_dispatcher_gives_up_after_max_attempts_with_the_reason(db: Database) -> None:
    add_rows(db, 1)
    clock = Clock(NOW)
    sender = FakeSender(fail=99)
    dispatcher = Dispatcher(db=db, senders={Channel.sms: sender}, clock=clock, policy=DispatchPolicy(max_attempts=3))
    for _ in range(5):
        dispatcher.run_once()
        clock.now += timedelta(hours=2)
    [row] = outbox(db)
    assert row.status == OutboxStatus.failed and row.attempts == 3 and row.last_error == "503 from provider"


def test_permanent_error_fails_at_once(db: Database) -> None:
    add_rows(db, 1)
    sender = FakeSender(fail=1, error=SendError("21211 invalid number", retry=False))
    Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW)).run_once()
    [row] = outbox(db)
    assert row.status == OutboxStatus.failed and row.attempts == 1


def test_retry_after_from_the_provider_is_honoured(db: Database) -> None:
    dispatcher = Dispatcher(db=db, senders={}, policy=DispatchPolicy(base_backoff=timedelta(seconds=1)))
    assert dispatcher.backoff(1, retry_after=120) >= timedelta(seconds=120)
    assert dispatcher.backoff(30) <= DispatchPolicy().max_backoff


def test_interrupted_send_is_looked_up_before_sending_again(db: Database) -> None:
    ids = add_rows(db, 2, due=NOW - timedelta(minutes=10), status=OutboxStatus.sending)
    sender = FakeSender(sent_before={ids[0]})

    Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW)).run_once()

    assert sender.recovered == ids
    assert sender.sent == [ids[1]], "only the one the provider never got is sent"
    assert all(row.status == OutboxStatus.sent for row in outbox(db))


def test_recent_claim_by_a_live_dispatcher_is_left_alone(db: Database) -> None:
    add_rows(db, 1, due=NOW - timedelta(seconds=30), status=OutboxStatus.sending)
    sender = FakeSender()
    assert Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW)).run_once() == 0


def test_concurrent_dispatchers_send_each_row_exactly_once(db: Database) -> None:
    ids = add_rows(db, 200)
    sender = FakeSender()
    dispatchers = [Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(NOW), policy=DispatchPolicy(batch=10)) for _ in range(3)]

    def drain(dispatcher: Dispatcher) -> None:
        while dispatcher.run_once():
            pass

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(drain, dispatchers))

    assert sorted(sender.sent) == ids
