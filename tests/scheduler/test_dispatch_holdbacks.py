"""Hold-backs of planner rows: quiet hours, the weekly care cap, appointment reminders gone stale, opt-outs.

Replies and other rows that answer the owner are never held back. The fixtures come from
test_dispatch_ladder (fake WeChat and fake Twilio on 127.0.0.1, a frozen clock).
"""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.messages import OutboundMessage
from bot.models import Appointment, Channel, Dealer, Outbox, OutboxStatus
from bot.outbox import Dispatcher, DispatchPolicy
from scheduler.ladder import Ladder
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.scheduler.test_dispatch_ladder import (  # noqa: F401  (fixtures)
    NOW,
    PHONE,
    Clock,
    add_owner,
    clock,
    dealer_id,
    dispatcher,
    plan,
    row,
    twilio,
    wechat,
)

pytestmark = pytest.mark.db

LOCAL_8AM_NEXT_DAY = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 08:00 in Guangzhou


def configure(db: Database, dealer_id: int, **settings: object) -> None:  # noqa: F811
    with db.transaction() as session:
        dealer = session.get_one(Dealer, dealer_id)
        dealer.config = DealerConfig.model_validate({**dealer.config, **settings}).model_dump(mode="json")


def book(db: Database, dealer_id: int, customer_id: int, starts_at: datetime, status: str = "booked") -> int:  # noqa: F811
    with db.transaction() as session:
        appointment = Appointment(dealer_id=dealer_id, reference=f"A{starts_at:%m%d%H%M}{status[:2]}", customer_id=customer_id,
                                  service_type="minor_service", starts_at=starts_at, ends_at=starts_at + timedelta(hours=1),
                                  status=status)
        session.add(appointment)
        session.flush()
        return appointment.id


def appointment_reminder(db: Database, dealer_id: int, owner: int, appointment_id: int, due: datetime = NOW) -> int:  # noqa: F811
    return plan(db, dealer_id, owner, kind="reminder:appointment_tomorrow", key=f"appointment_tomorrow:{appointment_id}",
                due=due, data={"rule": "appointment_tomorrow", "lang": "zh", "appointment_id": appointment_id})


def care_sent(db: Database, dealer_id: int, owner: int, days_ago: float, kind: str = "reminder:birthday") -> None:  # noqa: F811
    at = NOW - timedelta(days=days_ago)
    plan(db, dealer_id, owner, kind=kind, key=f"{kind}:{owner}:{days_ago}", due=at, status=OutboxStatus.sent, sent_at=at)


# -- quiet hours --------------------------------------------------------------------------------


def test_a_reminder_due_in_quiet_hours_waits_until_eight_in_the_morning_then_goes(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    clock.now = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 22:30 local
    outbox_id = plan(db, dealer_id, owner, due=clock.now)

    assert dispatcher.run_once() == 0
    held = row(db, outbox_id)
    assert held.status == OutboxStatus.pending and held.not_before == LOCAL_8AM_NEXT_DAY
    assert held.attempts == 0 and held.last_error is None and twilio.requests == []

    clock.now = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)  # 07:59 local
    assert dispatcher.run_once() == 0

    clock.now = LOCAL_8AM_NEXT_DAY
    assert dispatcher.run_once() == 1
    assert len(twilio.messages) == 1 and row(db, outbox_id).status == OutboxStatus.sent


def test_quiet_hours_after_midnight_end_the_same_morning(
    db: Database, dealer_id: int, clock: Clock, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    clock.now = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 03:00 local on the 25th
    outbox_id = plan(db, dealer_id, owner, due=clock.now)

    dispatcher.run_once()

    assert row(db, outbox_id).not_before == LOCAL_8AM_NEXT_DAY


def test_the_dealers_own_quiet_hours_apply(db: Database, dealer_id: int, clock: Clock, dispatcher: Dispatcher) -> None:  # noqa: F811
    configure(db, dealer_id, quiet_hours=(clock_time(20, 0), clock_time(9, 30)))
    owner = add_owner(db, dealer_id, openid=None)
    clock.now = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)  # 20:30 local
    outbox_id = plan(db, dealer_id, owner, due=clock.now)

    dispatcher.run_once()

    assert row(db, outbox_id).not_before == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_a_survey_is_held_in_quiet_hours_but_a_verification_code_is_not(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    clock.now = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    survey = plan(db, dealer_id, owner, kind="survey", key="survey:1", due=clock.now, data={"rule": "survey", "scale": "csat"})
    with db.transaction() as session:
        session.add(Outbox(dealer_id=dealer_id, customer_id=owner, dedupe_key="code:1", kind="verification_code",
                           channel=Channel.sms, address=PHONE, body="验证码 123456", not_before=clock.now))

    assert dispatcher.run_once() == 1

    [sms] = twilio.messages
    assert "123456" in sms.body
    assert row(db, survey).status == OutboxStatus.pending and row(db, survey).not_before == LOCAL_8AM_NEXT_DAY


# -- the weekly care cap ----------------------------------------------------------------------------


def test_a_third_care_message_in_a_week_waits_until_the_oldest_is_a_week_old(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    care_sent(db, dealer_id, owner, days_ago=5)
    care_sent(db, dealer_id, owner, days_ago=2, kind="survey")
    outbox_id = plan(db, dealer_id, owner)

    assert dispatcher.run_once() == 0
    held = row(db, outbox_id)
    assert held.status == OutboxStatus.pending and held.attempts == 0
    assert held.not_before == NOW + timedelta(days=2), "when the one sent 5 days ago is 7 days old"
    assert twilio.requests == []

    clock.now = held.not_before
    assert dispatcher.run_once() == 1
    assert row(db, outbox_id).status == OutboxStatus.sent


def test_care_older_than_a_week_and_other_owners_care_do_not_count(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    other = add_owner(db, dealer_id, openid=None, name="李女士", plate="粤A00001")
    care_sent(db, dealer_id, owner, days_ago=8)
    care_sent(db, dealer_id, owner, days_ago=7.5)
    care_sent(db, dealer_id, other, days_ago=1)
    care_sent(db, dealer_id, other, days_ago=2)
    care_sent(db, dealer_id, owner, days_ago=1)
    outbox_id = plan(db, dealer_id, owner)

    assert dispatcher.run_once() == 1
    assert row(db, outbox_id).status == OutboxStatus.sent


def test_appointment_reminders_are_never_capped_nor_counted(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    care_sent(db, dealer_id, owner, days_ago=3)
    care_sent(db, dealer_id, owner, days_ago=1)
    care_sent(db, dealer_id, owner, days_ago=2, kind="reminder:appointment_soon")
    appointment = book(db, dealer_id, owner, NOW + timedelta(days=1))
    reminder = appointment_reminder(db, dealer_id, owner, appointment)
    care = plan(db, dealer_id, owner)

    assert dispatcher.run_once() == 1

    assert row(db, reminder).status == OutboxStatus.sent
    assert row(db, care).status == OutboxStatus.pending


def test_a_cap_of_two_lets_two_go_in_one_batch_and_holds_the_third(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    ids = [plan(db, dealer_id, owner, kind=f"reminder:{rule}", key=rule) for rule in ("maintenance", "insurance", "inspection")]

    assert dispatcher.run_once() == 2

    assert [row(db, i).status for i in ids] == [OutboxStatus.sent, OutboxStatus.sent, OutboxStatus.pending]
    assert len(twilio.messages) == 2


def test_the_cap_holds_when_two_dispatchers_send_one_owners_rows_at_once(db: Database, dealer_id: int) -> None:  # noqa: F811
    """Each dispatcher claims one of the owner's rows at the same moment; the cap (1 here) lets one through."""
    configure(db, dealer_id, care_cap_per_week=1)
    owner = add_owner(db, dealer_id, openid=None)
    ids = [plan(db, dealer_id, owner, kind=f"reminder:{rule}", key=rule) for rule in ("maintenance", "insurance")]

    class SlowLadder(Ladder):
        def batch(self, *args, **kw):  # type: ignore[no-untyped-def]
            read = super().batch(*args, **kw)
            time.sleep(0.3)  # both have read the owner's recent care by now, if nothing keeps them apart
            return read

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send(self, message: OutboundMessage) -> str:
            self.sent.append(message.outbox_id)
            return f"P{message.outbox_id}"

        def recover(self, message: OutboundMessage) -> str | None:
            return None

    sender = Recorder()
    start = threading.Barrier(2)

    def dispatch() -> None:
        one = Dispatcher(db=db, senders={Channel.sms: sender}, clock=Clock(), ladder=SlowLadder(channels=(Channel.sms,)),
                                policy=DispatchPolicy(batch=1))
        start.wait()
        one.run_once()

    threads = [threading.Thread(target=dispatch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(sender.sent) == 1
    held = next(row(db, i) for i in ids if i not in sender.sent)
    assert held.status == OutboxStatus.pending and held.attempts == 0 and held.not_before > NOW


def test_a_cap_of_zero_sends_no_care_at_all(db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher) -> None:  # noqa: F811
    configure(db, dealer_id, care_cap_per_week=0)
    owner = add_owner(db, dealer_id, openid=None)
    outbox_id = plan(db, dealer_id, owner)

    dispatcher.run_once()

    assert row(db, outbox_id).status == OutboxStatus.cancelled and twilio.requests == []


# -- appointment reminders ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["cancelled", "done", "no_show"])
def test_a_reminder_of_an_appointment_no_longer_booked_is_cancelled(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, status: str  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    appointment = book(db, dealer_id, owner, NOW + timedelta(days=1), status=status)
    outbox_id = appointment_reminder(db, dealer_id, owner, appointment)

    assert dispatcher.run_once() == 0

    cancelled = row(db, outbox_id)
    assert cancelled.status == OutboxStatus.cancelled and cancelled.last_error == f"appointment_{status}"
    assert twilio.requests == []


def test_a_reminder_of_an_appointment_that_has_begun_is_cancelled(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    appointment = book(db, dealer_id, owner, NOW - timedelta(minutes=30), status="confirmed")
    outbox_id = appointment_reminder(db, dealer_id, owner, appointment, due=NOW - timedelta(hours=20))

    dispatcher.run_once()

    assert row(db, outbox_id).status == OutboxStatus.cancelled and row(db, outbox_id).last_error == "appointment_passed"
    assert twilio.requests == []


def test_a_reminder_planned_for_an_appointment_since_moved_is_cancelled(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    starts = NOW + timedelta(days=1)
    appointment = book(db, dealer_id, owner, starts)
    outbox_id = plan(db, dealer_id, owner, kind="reminder:appointment_tomorrow", key=f"appointment_tomorrow:{appointment}",
                     due=NOW, data={"rule": "appointment_tomorrow", "lang": "zh", "appointment_id": appointment,
                                    "appointment_starts_at": starts.isoformat()})
    with db.transaction() as session:  # staff moved it two hours later
        moved = session.get_one(Appointment, appointment)
        moved.starts_at, moved.ends_at = starts + timedelta(hours=2), starts + timedelta(hours=3)

    dispatcher.run_once()

    assert row(db, outbox_id).status == OutboxStatus.cancelled and row(db, outbox_id).last_error == "appointment_moved"
    assert twilio.requests == []


def test_a_confirmed_appointment_is_reminded(db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher) -> None:  # noqa: F811
    owner = add_owner(db, dealer_id, openid=None)
    appointment = book(db, dealer_id, owner, NOW + timedelta(hours=2), status="confirmed")
    outbox_id = appointment_reminder(db, dealer_id, owner, appointment)

    dispatcher.run_once()

    assert row(db, outbox_id).status == OutboxStatus.sent and len(twilio.messages) == 1


# -- opted out after the row was planned ----------------------------------------------------------------


def test_a_row_kept_on_wechat_after_an_outage_is_cancelled_when_the_owner_then_unfollows(
    db: Database, wechat, dealer_id: int, clock: Clock, dispatcher: Dispatcher  # noqa: F811
) -> None:
    from tests.scheduler.test_dispatch_ladder import CUSTOM, OPENID, owner_wrote

    owner = add_owner(db, dealer_id)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=1))
    outbox_id = plan(db, dealer_id, owner)
    wechat.status_next(503, path=CUSTOM)
    dispatcher.run_once()
    with db.transaction() as session:
        from bot.models import ChannelIdentity

        identity = session.scalars(select(ChannelIdentity).where(ChannelIdentity.address == OPENID)).one()
        identity.opted_out = True

    clock.now = row(db, outbox_id).not_before
    dispatcher.run_once()

    cancelled = row(db, outbox_id)
    assert cancelled.status == OutboxStatus.cancelled and cancelled.last_error == "opted_out"
    assert len(wechat.calls(CUSTOM)) == 1
