"""Carries out what a flow decided: hand-offs, appointments, tickets, staff alerts.

Flows are pure; their effects are written here, in the turn's transaction, so the owner's reply
and its consequences commit together or not at all. The one effect that can fail for reasons a
flow cannot see is a booking: between the owner's choice and this write another owner may have
taken the last bay. The capacity check therefore runs again here, under a lock, and a taken
slot answers with the flow's `if_taken` turn instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot import conversation_status, optout
from bot.models import (
    Appointment,
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    Outbox,
    OutboxStatus,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
    TicketStatus,
    Vehicle,
)
from flows.turn import (
    AlertStaff,
    CancelAppointment,
    ConfirmAppointment,
    CreateAppointment,
    Effect,
    Handoff,
    OpenTicket,
    RecordSurveyResponse,
    RescheduleAppointment,
    SetOptOut,
    Turn,
    UpdateTicket,
)

ACTIVE = ("booked", "confirmed")
# pg_advisory_xact_lock(class, key): the class names what is locked, the key which dealer's
_BOOKING_LOCK_CLASS = 71001


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose turn it is: every write is filed under this dealer, owner and conversation."""

    dealer_id: int
    customer_id: int
    conversation_id: int
    message_id: int
    now: datetime


def apply(session: Session, scope: Scope, effects: tuple[Effect, ...]) -> Turn | None:
    """Writes the effects in order; returns the turn to answer with instead, if a slot was taken."""
    for effect in effects:
        match effect:
            case Handoff():
                _hand_off(session, scope, effect)
            case CreateAppointment():
                if not _book(session, scope, effect):
                    return effect.if_taken
            case RescheduleAppointment():
                if not _reschedule(session, scope, effect):
                    return effect.if_taken
            case CancelAppointment():
                _cancel(session, scope, effect)
            case OpenTicket():
                _open_ticket(session, scope, effect)
            case UpdateTicket():
                _update_ticket(session, scope, effect)
            case AlertStaff():
                _alert(session, scope, effect)
            case SetOptOut():
                _set_opt_out(session, scope, effect)
            case RecordSurveyResponse():
                _record_survey_response(session, scope, effect)
            case ConfirmAppointment():
                _confirm(session, scope, effect)
            case _:
                raise TypeError(f"unknown effect {effect!r}")
    return None


def _hand_off(session: Session, scope: Scope, effect: Handoff) -> None:
    conversation = session.get_one(Conversation, scope.conversation_id)
    if conversation.status != ConversationStatus.bot:
        return  # already with a person (a second effect of the same case)
    conversation.handoff_reason = effect.reason
    conversation.handed_off_at = scope.now
    conversation.handoff_urgent = effect.urgent
    conversation_status.move(
        session=session,
        conversation=conversation,
        to=ConversationStatus.waiting_staff,
        actor="bot",
        data={"reason": effect.reason, "urgent": effect.urgent},
    )


def lock_calendar(session: Session, dealer_id: int) -> None:
    # PostgreSQL: one booking at a time per dealer, until commit. SQLite's BEGIN IMMEDIATE has
    # already made this transaction the only writer.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:class, :key)"), {"class": _BOOKING_LOCK_CLASS, "key": dealer_id})


def _free_bay(session: Session, dealer_id: int, starts_at: datetime, ends_at: datetime, *, ignore: int | None = None) -> int | None:
    """Returns a bay free for the whole interval, or None when every bay is taken at some point."""
    from bot.dealer_config import DealerConfig
    from bot.models import Dealer

    bays = DealerConfig.model_validate(session.get_one(Dealer, dealer_id).config or {}).bays
    query = select(Appointment.bay).where(
        Appointment.dealer_id == dealer_id,
        Appointment.status.in_(ACTIVE),
        Appointment.starts_at < ends_at,
        Appointment.ends_at > starts_at,
    )
    if ignore is not None:
        query = query.where(Appointment.id != ignore)
    taken = set(session.scalars(query))
    return next((bay for bay in range(1, bays + 1) if bay not in taken), None)


def _book(session: Session, scope: Scope, effect: CreateAppointment) -> bool:
    lock_calendar(session, scope.dealer_id)
    ends_at = effect.starts_at + timedelta(minutes=effect.minutes)
    bay = _free_bay(session, scope.dealer_id, effect.starts_at, ends_at)
    if bay is None:
        return False
    session.add(
        Appointment(
            dealer_id=scope.dealer_id,
            reference=effect.reference,
            customer_id=scope.customer_id,
            vehicle_id=effect.vehicle_id or _vehicle_for(session, scope, effect.plate),
            service_type=effect.service,
            starts_at=effect.starts_at,
            ends_at=ends_at,
            bay=bay,
            status="booked",
            pickup=effect.pickup,
            mileage=effect.mileage,
            notes=effect.notes,
        )
    )
    session.flush()
    return True


def _vehicle_for(session: Session, scope: Scope, plate: str | None) -> int | None:
    """Finds the dealer's vehicle with this plate, or records it as the owner's new car."""
    if not plate:
        return None
    found = session.scalar(select(Vehicle.id).where(Vehicle.dealer_id == scope.dealer_id, Vehicle.plate == plate))
    if found is not None:
        return found
    vehicle = Vehicle(dealer_id=scope.dealer_id, customer_id=scope.customer_id, plate=plate)
    session.add(vehicle)
    session.flush()
    return vehicle.id


def _own_appointment(session: Session, scope: Scope, appointment_id: int) -> Appointment | None:
    # the flow only offers the owner's own appointments; this makes sure of it
    appointment = session.get(Appointment, appointment_id)
    if appointment is None or appointment.customer_id != scope.customer_id or appointment.dealer_id != scope.dealer_id:
        return None
    return appointment


def _reschedule(session: Session, scope: Scope, effect: RescheduleAppointment) -> bool:
    lock_calendar(session, scope.dealer_id)
    appointment = _own_appointment(session, scope, effect.appointment_id)
    if appointment is None or appointment.status not in ACTIVE:
        return False
    ends_at = effect.starts_at + timedelta(minutes=effect.minutes)
    bay = _free_bay(session, scope.dealer_id, effect.starts_at, ends_at, ignore=appointment.id)
    if bay is None:
        return False
    appointment.starts_at, appointment.ends_at, appointment.bay = effect.starts_at, ends_at, bay
    return True


def _cancel(session: Session, scope: Scope, effect: CancelAppointment) -> None:
    appointment = _own_appointment(session, scope, effect.appointment_id)
    if appointment is not None and appointment.status in ACTIVE:
        appointment.status = "cancelled"


def _open_ticket(session: Session, scope: Scope, effect: OpenTicket) -> None:
    session.add(
        Ticket(
            dealer_id=scope.dealer_id,
            reference=effect.reference,
            kind=TicketKind(effect.kind),
            customer_id=scope.customer_id,
            conversation_id=scope.conversation_id,
            category=effect.category,
            urgent=effect.urgent,
            summary=effect.summary,
            details={**effect.details, "message_id": scope.message_id},
            sla_due_at=scope.now + timedelta(minutes=effect.sla_minutes),
            created_at=scope.now,
        )
    )
    session.flush()


def _update_ticket(session: Session, scope: Scope, effect: UpdateTicket) -> None:
    ticket = session.scalar(
        select(Ticket).where(Ticket.dealer_id == scope.dealer_id, Ticket.reference == effect.reference)
    )
    if ticket is None or ticket.customer_id != scope.customer_id:
        return
    details = dict(effect.details)
    if details.pop("reopened", False):
        # the owner says it is not settled: back to the queue, the first account kept
        ticket.status, ticket.resolved_at = TicketStatus.new, None
        details = {"reopened_at": scope.now.isoformat(), "reopened_text": details.pop("text", "")} | details
    ticket.details = {**(ticket.details or {}), **details}
    if effect.category:
        ticket.category = effect.category


def _alert(session: Session, scope: Scope, effect: AlertStaff) -> None:
    """Queues the alert for the staff on duty: the console shows channel "console" rows live."""
    count = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.dedupe_key.like(f"alert:{scope.message_id}:%")))
    data: dict[str, Any] = {"reason": effect.reason, "urgent": effect.urgent, "reference": effect.reference}
    session.add(
        Outbox(
            dealer_id=scope.dealer_id,
            customer_id=scope.customer_id,
            conversation_id=scope.conversation_id,
            dedupe_key=f"alert:{scope.message_id}:{count}",
            kind="alert",
            channel=Channel.console,
            address="on_duty",
            body=effect.text,
            data=data,
            status=OutboxStatus.pending,
            not_before=scope.now,
            created_at=scope.now,
        )
    )
    session.flush()


def _set_opt_out(session: Session, scope: Scope, effect: SetOptOut) -> None:
    """Opts the address this message came from in or out, on its own channel only."""
    row = session.execute(select(Message.channel, Message.address).where(Message.id == scope.message_id)).one()
    optout.set_opted_out(
        session, dealer_id=scope.dealer_id, channel=Channel(row.channel), address=row.address, opted_out=effect.opted_out,
        now=scope.now,
    )


def _record_survey_response(session: Session, scope: Scope, effect: RecordSurveyResponse) -> None:
    """Stores the owner's score for their own survey; a second answer updates the first."""
    survey = session.get(Survey, effect.survey_id)
    if survey is None or survey.dealer_id != scope.dealer_id or survey.customer_id != scope.customer_id:
        return  # the outreach named a survey that is not this owner's: nothing to record
    ticket_id = None
    if effect.ticket:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.dealer_id == scope.dealer_id, Ticket.reference == effect.ticket))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    row = dialect.insert(SurveyResponse).values(
        dealer_id=scope.dealer_id,
        survey_id=survey.id,
        score=effect.score,
        comment=effect.comment,
        ticket_id=ticket_id,
        created_at=scope.now,
    )
    # one response per survey (unique survey_id): the latest score counts, while a comment or
    # a ticket already stored is kept unless this answer brings a new one
    session.execute(
        row.on_conflict_do_update(
            index_elements=[SurveyResponse.survey_id],
            set_={
                "score": row.excluded.score,
                "comment": func.coalesce(func.nullif(row.excluded.comment, ""), SurveyResponse.comment),
                "ticket_id": func.coalesce(row.excluded.ticket_id, SurveyResponse.ticket_id),
            },
        )
    )


def _confirm(session: Session, scope: Scope, effect: ConfirmAppointment) -> None:
    appointment = _own_appointment(session, scope, effect.appointment_id)
    if appointment is not None and appointment.status == "booked":
        appointment.status = "confirmed"
