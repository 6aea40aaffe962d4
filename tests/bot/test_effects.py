"""What the pipeline writes for a flow's effects, and the booking re-check under the lock."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import effects
from bot.db import Database
from bot.messages import Reply
from bot.models import Appointment, Conversation, ConversationStatus, Outbox, Ticket, Vehicle
from flows.turn import (
    AlertStaff,
    CancelAppointment,
    CreateAppointment,
    Handoff,
    OpenTicket,
    RescheduleAppointment,
    State,
    Turn,
    UpdateTicket,
)
from tests.factories import make_customer, make_dealer

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
NINE = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Shanghai
TAKEN = Turn(replies=(Reply("刚被约走了"),), state=State(flow="booking"))


@pytest.fixture
def scope(db: Database) -> effects.Scope:
    with db.transaction() as session:
        dealer = make_dealer(session, bays=2)
        customer = make_customer(session, dealer)
        conversation = Conversation(dealer_id=dealer.id, customer_id=customer.id, state={})
        session.add(conversation)
        session.flush()
        return effects.Scope(dealer.id, customer.id, conversation.id, message_id=42, now=NOW)


def book(db: Database, scope: effects.Scope, reference: str, starts_at: datetime = NINE, **kw) -> Turn | None:  # type: ignore[no-untyped-def]
    effect = CreateAppointment(reference=reference, service="minor_service", starts_at=starts_at, minutes=60, if_taken=TAKEN, **kw)
    with db.transaction() as session:
        return effects.apply(session, scope, (effect,))


def test_a_free_slot_is_booked_in_a_free_bay(db: Database, scope: effects.Scope) -> None:
    assert book(db, scope, "B000001") is None
    assert book(db, scope, "B000002") is None

    with db.sessions() as session:
        rows = session.scalars(select(Appointment).order_by(Appointment.id)).all()
    assert [(row.reference, row.bay) for row in rows] == [("B000001", 1), ("B000002", 2)]
    assert rows[0].ends_at - rows[0].starts_at == timedelta(minutes=60)


def test_when_every_bay_is_taken_the_flows_alternative_turn_answers_and_nothing_is_written(db: Database, scope: effects.Scope) -> None:
    book(db, scope, "B000001")
    book(db, scope, "B000002")

    instead = book(db, scope, "B000003", starts_at=NINE + timedelta(minutes=30))  # overlaps both

    assert instead is TAKEN
    with db.sessions() as session:
        assert len(session.scalars(select(Appointment)).all()) == 2


def test_a_new_plate_becomes_the_owners_vehicle(db: Database, scope: effects.Scope) -> None:
    book(db, scope, "B000001", plate="沪AD12345")

    with db.sessions() as session:
        appointment = session.scalars(select(Appointment)).one()
        vehicle = session.get_one(Vehicle, appointment.vehicle_id)
    assert (vehicle.plate, vehicle.customer_id) == ("沪AD12345", scope.customer_id)


def test_rescheduling_ignores_the_appointment_being_moved_and_refuses_a_full_slot(db: Database, scope: effects.Scope) -> None:
    book(db, scope, "B000001")
    book(db, scope, "B000002", starts_at=NINE + timedelta(hours=2))
    with db.sessions() as session:
        first, second = session.scalars(select(Appointment.id).order_by(Appointment.id)).all()

    with db.transaction() as session:  # 09:30 overlaps only itself: allowed
        assert effects.apply(session, scope, (RescheduleAppointment(first, NINE + timedelta(minutes=30), 60, TAKEN),)) is None
    with db.transaction() as session:
        effects.apply(session, scope, (RescheduleAppointment(second, NINE + timedelta(minutes=30), 60, TAKEN),))
    book(db, scope, "B000003", starts_at=NINE + timedelta(hours=5))
    with db.transaction() as session:  # both bays now busy at 09:30
        third = session.scalar(select(Appointment.id).where(Appointment.reference == "B000003"))
        assert effects.apply(session, scope, (RescheduleAppointment(third, NINE + timedelta(minutes=30), 60, TAKEN),)) is TAKEN


def test_cancelling_touches_only_the_owners_own_appointment(db: Database, scope: effects.Scope) -> None:
    book(db, scope, "B000001")
    with db.sessions() as session:
        appointment_id = session.scalar(select(Appointment.id))
    stranger = effects.Scope(scope.dealer_id, scope.customer_id + 999, scope.conversation_id, 43, NOW)

    with db.transaction() as session:
        effects.apply(session, stranger, (CancelAppointment(appointment_id),))
    with db.sessions() as session:
        assert session.get_one(Appointment, appointment_id).status == "booked"
    with db.transaction() as session:
        effects.apply(session, scope, (CancelAppointment(appointment_id),))
    with db.sessions() as session:
        assert session.get_one(Appointment, appointment_id).status == "cancelled"


def test_an_urgent_ticket_an_alert_and_the_handoff_are_written_together(db: Database, scope: effects.Scope) -> None:
    with db.transaction() as session:
        effects.apply(
            session,
            scope,
            (
                OpenTicket("R000042", "roadside", "flat_tyre", True, "高速爆胎", sla_minutes=30, details={"place": "广深高速"}),
                AlertStaff("roadside", "道路救援 R000042：高速爆胎", reference="R000042"),
                Handoff("roadside", urgent=True),
            ),
        )
        effects.apply(session, scope, (UpdateTicket("R000042", {"location": "K45"}),))

    with db.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        alert = session.scalars(select(Outbox).where(Outbox.kind == "alert")).one()
        conversation = session.get_one(Conversation, scope.conversation_id)
    assert ticket.urgent and ticket.sla_due_at == NOW + timedelta(minutes=30)
    assert ticket.details == {"place": "广深高速", "message_id": 42, "location": "K45"}
    assert alert.channel.value == "console" and "R000042" in alert.body and alert.data["urgent"] is True
    assert conversation.status == ConversationStatus.waiting_staff


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twenty_bookings_of_the_last_bay_at_once_make_exactly_one_appointment(db: Database, scope: effects.Scope) -> None:
    book(db, scope, "B000000")  # bay 1 of 2 taken: one left
    barrier = threading.Barrier(20)

    def attempt(number: int) -> Turn | None:
        barrier.wait()
        return book(db, scope, f"B1{number:05d}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(attempt, range(20)))

    assert sum(answer is None for answer in answers) == 1
    assert sum(answer is TAKEN for answer in answers) == 19
    with db.sessions() as session:
        assert len(session.scalars(select(Appointment)).all()) == 2
