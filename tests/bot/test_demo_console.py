"""The demo dealer's working day in the console: an inbox, tickets, a workshop calendar, surveys, reports.

`dealercare demo load` writes it right after the owners (bot/cli.py); here it is loaded the same way,
`load_demo` then `load_console_demo` in one transaction, for a fixed day.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bot import cli
from bot.console import inbox
from bot.console.conversations import default_route, routes_to_owner
from bot.console.report_queries import (
    BOOKING_KINDS,
    last_months,
    reminder_conversion,
    tickets_by_class,
)
from bot.console.tickets import is_overdue
from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.demo import load_demo
from bot.demo_console import FIRST_OWNERS_KEPT, SPARE_BAYS, demo_now, load_console_demo
from bot.models import (
    Appointment,
    Base,
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Staff,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
    TicketStatus,
    Vehicle,
)
from bot.simulator import simulator_message
from flows.roadside import PROBLEMS

TODAY = date(2026, 3, 15)  # a Sunday: the workshop is open every day
ZONE = ZoneInfo("Asia/Shanghai")
NOW = demo_now(TODAY, ZONE)  # 10:30 that morning: what the demo was written against
CONSOLE_TABLES = (Appointment, Survey, SurveyResponse, Ticket, Outbox, Conversation, Message, ConversationEvent)

pytestmark = pytest.mark.db


@pytest.fixture
def seeded(db: Database) -> Database:
    with db.transaction() as session:
        load_console_demo(session, load_demo(session, today=TODAY), today=TODAY)
    return db


def _counts(db: Database) -> list[int]:
    with db.transaction() as session:
        return [session.scalar(select(func.count()).select_from(model)) for model in CONSOLE_TABLES]


def _dealer(session: Session) -> tuple[Dealer, DealerConfig]:
    dealer = session.scalars(select(Dealer)).one()
    return dealer, DealerConfig.model_validate(dealer.config)


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZONE)


# -- the inbox -------------------------------------------------------------------------------------------


def test_the_inbox_has_two_conversations_waiting_roadside_first(seeded: Database) -> None:
    with seeded.transaction() as session:
        dealer, _ = _dealer(session)
        manager = session.scalars(select(Staff).where(Staff.username == "manager")).one()
        owners = session.scalars(select(Customer.id).order_by(Customer.id)).all()
        waiting = inbox.load(session, dealer.id, manager.id, NOW).waiting

        assert [item.reason for item in waiting] == ["roadside", "complaint"]
        roadside, complaint = waiting
        assert roadside.rank == inbox.URGENT and complaint.rank == inbox.COMPLAINT
        assert not roadside.overdue and not complaint.overdue
        assert timedelta(0) < NOW - roadside.waiting_since < timedelta(minutes=15)  # a few minutes ago
        assert {item.channel for item in waiting} == {"simulator"}
        said = session.scalars(select(Message.text).where(Message.conversation_id == roadside.conversation_id)).all()
        assert any("广园快速路" in text for text in said)
        assert complaint.last_text.startswith("上次来修过一次")
        # owners near the end of the list, never the ones tests and visitors start with
        assert all(owners.index(item.customer_id) >= len(owners) - 10 for item in waiting)


def test_the_waiting_conversations_are_written_as_the_pipeline_writes_them(seeded: Database) -> None:
    with seeded.transaction() as session:
        for conversation in session.scalars(select(Conversation)):
            address = f"sim:{conversation.customer_id}"
            identity = session.scalars(select(ChannelIdentity).where(
                ChannelIdentity.channel == Channel.simulator, ChannelIdentity.customer_id == conversation.customer_id)).one()
            messages = session.scalars(select(Message).where(Message.conversation_id == conversation.id)
                                       .order_by(Message.id)).all()
            inbound = [m for m in messages if m.direction == Direction.inbound]
            outbound = [m for m in messages if m.direction == Direction.outbound]

            assert conversation.status == ConversationStatus.waiting_staff
            assert conversation.handed_off_at and conversation.last_channel == Channel.simulator
            assert conversation.last_handled_id == inbound[-1].id
            assert conversation.last_message_at == inbound[-1].created_at == identity.last_inbound_at
            assert identity.address == address and {m.address for m in messages} == {address}
            assert all(m.status == MessageStatus.handled and m.handled_at and m.sender == "owner" for m in inbound)
            assert all(m.status == MessageStatus.outgoing and m.sender == "bot" and m.reply_to_id for m in outbound)
            replies = session.scalars(select(Outbox).where(Outbox.kind == "reply", Outbox.conversation_id == conversation.id))
            assert sorted((o.message_id, o.status) for o in replies) == [(m.id, OutboxStatus.sent) for m in outbound]
            # the bot's status move and, after it, the owner's message the console is told about
            events = session.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id == conversation.id)
                                     .order_by(ConversationEvent.id)).all()
            assert [(e.kind, e.from_status, e.to_status) for e in events] == [
                ("status", "bot", "waiting_staff"), ("message", None, None)]
            assert events[0].created_at == conversation.handed_off_at
            assert events[1].data == {"message_id": inbound[-1].id}
            # the ticket the turn opened, on this conversation and in time
            ticket = session.scalars(select(Ticket).where(Ticket.conversation_id == conversation.id)).one()
            assert ticket.status == TicketStatus.new and ticket.sla_due_at > NOW
            assert ticket.reference in "".join(m.text for m in outbound)
            assert ticket.kind.value == conversation.handoff_reason
            # a person trying the demo answers from the console into the simulator
            found, _ = routes_to_owner(session, conversation, NOW)
            assert default_route(conversation, found).channel == "simulator"


def test_an_owner_writing_to_a_waiting_conversation_joins_it_and_the_bot_stays_silent(seeded: Database,
                                                                                      pipeline) -> None:  # type: ignore[no-untyped-def]
    with seeded.transaction() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.handoff_reason == "roadside")).one()
        dealer_id, customer_id, conversation_id = conversation.dealer_id, conversation.customer_id, conversation.id

    replies = pipeline.handle_inbound(simulator_message(dealer_id=dealer_id, customer_id=customer_id, text="救援车到哪了？"))

    assert replies == []
    with seeded.transaction() as session:
        last = session.scalars(select(Message).order_by(Message.id.desc()).limit(1)).one()
        assert (last.conversation_id, last.text, last.status) == (conversation_id, "救援车到哪了？", MessageStatus.handled)
        assert session.scalar(select(func.count()).select_from(Conversation)) == 2


# -- tickets ---------------------------------------------------------------------------------------------


def test_tickets_exist_in_every_status_and_one_is_overdue(seeded: Database) -> None:
    with seeded.transaction() as session:
        dealer, config = _dealer(session)
        tickets = session.scalars(select(Ticket)).all()

        assert {t.status for t in tickets} == set(TicketStatus)
        assert [t.reference for t in tickets if is_overdue(t, NOW)] == [
            t.reference for t in tickets if t.status == TicketStatus.in_progress and t.kind == TicketKind.complaint]
        assert sum(is_overdue(t, NOW) for t in tickets) == 1
        complaints = [t for t in tickets if t.kind == TicketKind.complaint]
        rescues = [t for t in tickets if t.kind == TicketKind.roadside]
        assert 6 <= len(complaints) <= 10
        assert {t.category for t in complaints} == {"product_quality", "service", "other"}
        assert len(rescues) >= 2 and {t.category for t in rescues} <= set(PROBLEMS)
        assert {TicketStatus.resolved, TicketStatus.in_progress} <= {t.status for t in rescues}
        assert all(t.urgent for t in rescues)
        for ticket in tickets:
            minutes = config.sla_minutes["urgent" if ticket.urgent else "complaint"]
            assert ticket.sla_due_at == ticket.created_at + timedelta(minutes=minutes)
            assert ticket.created_at <= NOW
            done = ticket.status in (TicketStatus.resolved, TicketStatus.closed)
            assert bool(ticket.result) == done and bool(ticket.resolved_at) == done
            assert ticket.department or ticket.status == TicketStatus.new
        references = [t.reference for t in tickets]
        assert len(set(references)) == len(references)
        assert all(r.startswith(("DEMO-C", "DEMO-R")) for r in references)
        # the report's bars: every class has tickets in the last six months
        counts = tickets_by_class(session, dealer.id, last_months(NOW, dealer.timezone, 7))
        assert all(counts.total(name) for name in ("product_quality", "service", "other", "roadside"))


# -- the workshop calendar -------------------------------------------------------------------------------


def test_appointments_never_overlap_in_a_bay_and_lie_within_opening_hours(seeded: Database) -> None:
    with seeded.transaction() as session:
        _, config = _dealer(session)
        appointments = session.scalars(select(Appointment)).all()
        cars = {row.id: row.customer_id for row in session.execute(select(Vehicle.id, Vehicle.customer_id))}

        by_bay: dict[int, list[Appointment]] = defaultdict(list)
        for appointment in appointments:
            by_bay[appointment.bay].append(appointment)
            start, end = _local(appointment.starts_at), _local(appointment.ends_at)
            hours = config.hours[start.weekday()]
            assert start.date() == end.date() and start.date() not in config.holidays
            assert hours.open <= start.time() and end.time() <= hours.close, appointment.reference
            assert start.minute % config.slot_minutes == 0
            minutes = next(s.minutes for s in config.services if s.code == appointment.service_type)
            assert appointment.ends_at - appointment.starts_at == timedelta(minutes=minutes)
            assert cars[appointment.vehicle_id] == appointment.customer_id
            assert appointment.created_at < appointment.starts_at and appointment.created_at <= NOW
        assert set(by_bay) <= set(range(1, config.bays + 1))
        for bay, booked in by_bay.items():
            booked.sort(key=lambda a: a.starts_at)
            for before, after in pairwise(booked):
                assert before.ends_at <= after.starts_at, f"bay {bay}: {before.reference} and {after.reference} overlap"
        references = [a.reference for a in appointments]
        assert len(set(references)) == len(references) and all(r.startswith("DEMO-A") for r in references)


def test_the_next_days_are_busy_but_always_leave_bays_for_the_bot(seeded: Database) -> None:
    with seeded.transaction() as session:
        _, config = _dealer(session)
        appointments = session.scalars(select(Appointment)).all()

    ahead = [a for a in appointments if _local(a.starts_at).date() >= TODAY]
    per_day = Counter(_local(a.starts_at).date() for a in ahead)
    assert sorted(per_day) == [TODAY + timedelta(days=n) for n in range(4)]
    assert all(6 <= count <= 10 for count in per_day.values())
    statuses = Counter(a.status for a in ahead if a.starts_at > NOW)
    assert statuses["booked"] > statuses["confirmed"] > 0
    assert 1 <= Counter(a.status for a in ahead)["cancelled"] <= 2
    assert all(a.status in ("done", "confirmed", "cancelled") for a in ahead if a.starts_at <= NOW)
    assert all(a.status == "done" for a in appointments if _local(a.starts_at).date() < TODAY)
    for moment in {a.starts_at for a in appointments}:  # the most at once is reached when one starts
        at_once = sum(a.starts_at <= moment < a.ends_at for a in appointments)
        assert at_once <= config.bays - SPARE_BAYS


# -- surveys and reminders -------------------------------------------------------------------------------


def test_every_survey_answer_belongs_to_a_survey_of_a_service_record_of_the_same_owner(seeded: Database) -> None:
    with seeded.transaction() as session:
        rows = session.execute(
            select(SurveyResponse, Survey, ServiceRecord)
            .join(Survey, Survey.id == SurveyResponse.survey_id)
            .join(ServiceRecord, ServiceRecord.id == Survey.service_record_id)
        ).all()
        surveys = session.scalars(select(Survey)).all()
        tickets = {t.id: t for t in session.scalars(select(Ticket))}

        assert len(rows) == session.scalar(select(func.count()).select_from(SurveyResponse))
        assert len(surveys) > 30 and 0.6 <= len(rows) / len(surveys) <= 0.9
        assert len({s.service_record_id for s in surveys}) == len(surveys)
        assert Counter(s.kind for s in surveys).most_common(1)[0][0] == "csat" and any(s.kind == "nps" for s in surveys)
        low = 0
        for answer, survey, record in rows:
            assert survey.customer_id == record.customer_id
            assert record.closed_at < survey.sent_at < answer.created_at <= NOW
            assert NOW - survey.sent_at < timedelta(days=185)
            assert (1 <= answer.score <= 5) if survey.kind == "csat" else (0 <= answer.score <= 10)
            if answer.score <= (3 if survey.kind == "csat" else 6):  # flows/survey.py LOW: a complaint
                low += 1
                ticket = tickets[answer.ticket_id]
                assert ticket.customer_id == survey.customer_id and ticket.kind == TicketKind.complaint
                assert answer.comment and answer.comment in ticket.summary
            else:
                assert answer.ticket_id is None
        assert 2 <= low <= 4
        assert any("等待时间太长" in answer.comment for answer, _, _ in rows)


def test_the_conversion_report_shows_a_rate(seeded: Database) -> None:
    with seeded.transaction() as session:
        dealer, _ = _dealer(session)
        report = reminder_conversion(session, dealer.id, last_months(NOW, dealer.timezone, 7))
        reminders = session.scalars(select(Outbox).where(Outbox.kind.like("reminder:%"))).all()
        phones = {row.id: row.phone for row in session.execute(select(Customer.id, Customer.phone))}

    assert report.total.sent >= 30
    assert 15 <= report.total.rate <= 50
    assert sum(c.rate is not None for c in report.by_month) >= 5
    assert {c.label for c in report.by_kind} >= {"reminder:maintenance", "reminder:inspection"}
    assert {r.kind for r in reminders} >= {"reminder:maintenance", "reminder:insurance", "reminder:inspection"}
    assert any(r.kind not in BOOKING_KINDS for r in reminders)
    for reminder in reminders:
        assert reminder.status == OutboxStatus.sent and reminder.channel == Channel.sms
        assert reminder.address == phones[reminder.customer_id] and reminder.dedupe_key.startswith("demo:")
        assert NOW - timedelta(days=185) < reminder.sent_at < NOW and reminder.body


def test_nothing_waits_in_the_outbox(seeded: Database) -> None:
    # a pending row would go out (or be cancelled) the moment `make run` starts its worker
    with seeded.transaction() as session:
        statuses = set(session.scalars(select(Outbox.status)))
    assert statuses == {OutboxStatus.sent}


# -- what the demo leaves alone ----------------------------------------------------------------------------


def test_the_first_owners_have_no_history_in_the_console(seeded: Database) -> None:
    with seeded.transaction() as session:
        first = session.scalars(select(Customer.id).order_by(Customer.id).limit(FIRST_OWNERS_KEPT)).all()
        for model in (Appointment, Ticket, Conversation, Survey, Outbox):
            count = session.scalar(select(func.count()).select_from(model).where(model.customer_id.in_(first)))
            assert count == 0, model.__name__


def test_dealercare_demo_load_writes_the_console_day_once(db: Database, database_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", database_url)
    runner = CliRunner()

    first = runner.invoke(cli.app, ["demo", "load"])
    assert first.exit_code == 0 and "loaded demo dealer" in first.output
    loaded = _counts(db)
    again = runner.invoke(cli.app, ["demo", "load"])

    assert again.exit_code == 0 and "already loaded" in again.output
    assert _counts(db) == loaded
    assert all(loaded)  # the command wrote every part of the day
    with db.transaction() as session:
        assert len(session.scalars(select(Conversation).where(
            Conversation.status == ConversationStatus.waiting_staff)).all()) == 2


def test_load_demo_alone_leaves_the_owners_without_history(demo: Dealer, db: Database) -> None:
    # what the tests that load the demo by themselves rely on: no message, booking or ticket yet
    assert not any(_counts(db))


def test_the_console_demo_is_the_same_every_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    snapshots = []
    for name in ("one", "two"):
        database = Database(f"sqlite:///{tmp_path / name}.db")
        Base.metadata.create_all(database.engine)
        with database.transaction() as session:
            load_console_demo(session, load_demo(session, today=TODAY), today=TODAY)
        with database.transaction() as session:
            snapshots.append((
                session.execute(select(Appointment.reference, Appointment.customer_id, Appointment.starts_at,
                                       Appointment.bay, Appointment.status).order_by(Appointment.id)).all(),
                session.execute(select(Ticket.reference, Ticket.status, Ticket.category, Ticket.created_at)
                                .order_by(Ticket.id)).all(),
                session.execute(select(SurveyResponse.score, SurveyResponse.comment).order_by(SurveyResponse.id)).all(),
                session.execute(select(Outbox.dedupe_key, Outbox.sent_at).order_by(Outbox.id)).all(),
                session.execute(select(Message.text, Message.created_at).order_by(Message.id)).all(),
            ))
        database.dispose()
    assert snapshots[0] == snapshots[1]
