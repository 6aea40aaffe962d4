"""The tables. Every row that holds owner data carries dealer_id, and every query filters by it."""
from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so Alembic autogenerate and downgrades behave on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTC(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store aware UTC times only")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTC(), dict[str, Any]: JSON, list[Any]: JSON}


def str_enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM type): adding a value needs no type migration.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Channel(str, enum.Enum):
    wechat = "wechat"
    sms = "sms"
    simulator = "simulator"
    console = "console"


class Direction(str, enum.Enum):
    inbound = "in"
    outbound = "out"


class MessageStatus(str, enum.Enum):
    received = "received"  # stored, not yet handled
    handled = "handled"  # a bot turn ran (or staff got it)
    dead = "dead"  # could not be handled; kept for staff
    outgoing = "outgoing"  # outbound, see its outbox row


class ConversationStatus(str, enum.Enum):
    bot = "bot"
    waiting_staff = "waiting_staff"
    staff = "staff"
    closed = "closed"


class StaffRole(str, enum.Enum):
    agent = "agent"
    manager = "manager"
    admin = "admin"


class TicketKind(str, enum.Enum):
    complaint = "complaint"
    roadside = "roadside"


class TicketStatus(str, enum.Enum):
    new = "new"
    acknowledged = "acknowledged"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


class OutboxStatus(str, enum.Enum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


class Dealer(Base):
    __tablename__ = "dealer"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    language: Mapped[str] = mapped_column(String(8), default="zh")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # opening hours, services and durations, bays, holidays, SLAs, FAQ: see bot/dealer_config.py
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelAccount(Base):
    """A dealer's account on an outside channel (WeChat official account, Twilio number)."""

    __tablename__ = "channel_account"
    __table_args__ = (UniqueConstraint("dealer_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Customer(Base):
    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_dealer_phone", "dealer_id", "phone"),
        # the owner's id in the dealer's DMS: `dealercare import` upserts by it
        UniqueConstraint("dealer_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="zh")
    tier: Mapped[str] = mapped_column(String(1), default="C")
    birthday: Mapped[date | None] = mapped_column(Date)
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    preferred_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    vehicles: Mapped[list[Vehicle]] = relationship(back_populates="customer", lazy="raise")


class Vehicle(Base):
    __tablename__ = "vehicle"
    __table_args__ = (
        UniqueConstraint("dealer_id", "plate"),
        # the reminder planner's date windows (scheduler/planner.py)
        Index("ix_vehicle_dealer_insurance_due", "dealer_id", "insurance_due"),
        Index("ix_vehicle_dealer_inspection_due", "dealer_id", "inspection_due"),
        Index("ix_vehicle_dealer_warranty_until", "dealer_id", "warranty_until"),
        Index("ix_vehicle_dealer_delivery_date", "dealer_id", "delivery_date"),
        Index("ix_vehicle_dealer_last_service_date", "dealer_id", "last_service_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    plate: Mapped[str] = mapped_column(String(16))
    vin: Mapped[str | None] = mapped_column(String(17))
    model: Mapped[str] = mapped_column(String(100), default="")
    delivery_date: Mapped[date | None] = mapped_column(Date)
    last_service_date: Mapped[date | None] = mapped_column(Date)
    last_service_mileage: Mapped[int | None] = mapped_column(Integer)
    mileage: Mapped[int | None] = mapped_column(Integer)
    insurance_due: Mapped[date | None] = mapped_column(Date)
    inspection_due: Mapped[date | None] = mapped_column(Date)
    warranty_until: Mapped[date | None] = mapped_column(Date)

    customer: Mapped[Customer] = relationship(back_populates="vehicles", lazy="raise")


class ServiceRecord(Base):
    """One closed repair order (修理单): the car's service history and the survey's trigger."""

    __tablename__ = "service_record"
    __table_args__ = (
        UniqueConstraint("dealer_id", "order_no"),
        # the planner's surveys: repair orders closed recently
        Index("ix_service_record_dealer_closed_at", "dealer_id", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    order_no: Mapped[str] = mapped_column(String(40))
    service_type: Mapped[str] = mapped_column(String(40))
    opened_on: Mapped[date] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column()
    mileage: Mapped[int | None] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(Text, default="")


class ChannelIdentity(Base):
    """How a customer is addressed on one channel: a WeChat openid, a phone number."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("dealer_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    address: Mapped[str] = mapped_column(String(128))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    last_inbound_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (Index("ix_conversation_dealer_status", "dealer_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    status: Mapped[ConversationStatus] = mapped_column(
        str_enum(ConversationStatus), default=ConversationStatus.bot
    )
    # the flow engine's whole state (active flow, slots, misses): see flows/engine.py
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handed_off_to: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    # when the bot last handed over, and whether it said urgent: the console's order and SLA clock
    handed_off_at: Mapped[datetime | None] = mapped_column()
    handoff_urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    last_channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    last_message_at: Mapped[datetime | None] = mapped_column()
    # the inbound message the last turn handled: turns take messages in id order, so a turn that
    # is offered one at or below this id read a stale snapshot (see Pipeline._lock_next)
    last_handled_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConversationEvent(Base):
    """Every status move and every message a person should see; the console listens to these."""

    __tablename__ = "conversation_event"
    # the console's live feed reads a dealer's events after the last id it sent
    __table_args__ = (Index("ix_conversation_event_dealer_id_id", "dealer_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64), default="bot")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # a channel's retry of the same message hits this constraint: dedupe is not an `if`
        UniqueConstraint("dealer_id", "channel", "channel_message_id"),
        Index("ix_message_conversation_id_id", "conversation_id", "id"),
        # every turn asks for its conversation's oldest unhandled message: a partial index keeps
        # that one probe however long the conversation grows
        Index(
            "ix_message_unhandled",
            "conversation_id",
            "id",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus))
    address: Mapped[str] = mapped_column(String(128))  # the owner's openid / phone / simulator id
    kind: Mapped[str] = mapped_column(String(24), default="text")  # text, voice, location, image, event...
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # inbound: what NLU understood; outbound: which inbound message it answers
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    parse: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"), index=True)
    sender: Mapped[str] = mapped_column(String(64), default="owner")  # owner, bot, staff:<id>, scheduler
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column()


class Appointment(Base):
    __tablename__ = "appointment"
    __table_args__ = (
        Index("ix_appointment_dealer_start", "dealer_id", "starts_at"),
        # the console's reminder-to-booking report: did this owner book after that reminder?
        Index("ix_appointment_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    vehicle_id: Mapped[int | None] = mapped_column(ForeignKey("vehicle.id", ondelete="SET NULL"))
    service_type: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    bay: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="booked")  # booked, confirmed, cancelled, done, no_show
    pickup: Mapped[bool] = mapped_column(Boolean, default=False)
    mileage: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_dealer_status", "dealer_id", "status"),
        Index("ix_ticket_dealer_created", "dealer_id", "created_at"),  # the console's tickets-by-class report
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[TicketKind] = mapped_column(str_enum(TicketKind))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"))
    category: Mapped[str] = mapped_column(String(32), default="other")  # product_quality, service, other
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus), default=TicketStatus.new)
    department: Mapped[str | None] = mapped_column(String(64))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    sla_due_at: Mapped[datetime | None] = mapped_column()
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class Outbox(Base):
    """A message to send. It exists before it is sent; dedupe_key makes a second row impossible."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before"),
        Index("ix_outbox_provider_id", "provider_id"),
        # the weekly care cap counts an owner's recent care messages
        Index("ix_outbox_customer_sent", "customer_id", "sent_at"),
        # the console's reminder-to-booking report: a dealer's reminders by kind and month
        Index("ix_outbox_dealer_kind_sent", "dealer_id", "kind", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("message.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # reply, staff_reply, reminder:<rule>, survey, alert
    channel: Mapped[Channel | None] = mapped_column(str_enum(Channel))
    address: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus), default=OutboxStatus.pending)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128))
    provider_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class Survey(Base):
    __tablename__ = "survey"
    # one survey per repair order: planning twice never asks twice
    __table_args__ = (UniqueConstraint("dealer_id", "service_record_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), index=True)
    service_record_id: Mapped[int | None] = mapped_column(ForeignKey("service_record.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), default="csat")  # csat 1-5, nps 0-10
    advisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    sent_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SurveyResponse(Base):
    __tablename__ = "survey_response"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("dealer_id", "username"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole), default=StaffRole.agent)
    password_hash: Mapped[str] = mapped_column(String(200))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id", ondelete="SET NULL"))
    target: Mapped[str] = mapped_column(String(100), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookRequest(Base):
    """A signed webhook request seen before: its (timestamp, nonce) and what its body was.

    WeChat signs only the query in plaintext mode, so a replayed query with a new body must be
    refused; a genuine retry repeats the body and gets the same answer without a second turn.
    """

    __tablename__ = "webhook_request"
    __table_args__ = (UniqueConstraint("dealer_id", "channel", "timestamp", "nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    timestamp: Mapped[str] = mapped_column(String(20))
    nonce: Mapped[str] = mapped_column(String(64))
    body_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ChannelToken(Base):
    """A provider access token shared by every process (WeChat's access_token), per dealer."""

    __tablename__ = "channel_token"
    __table_args__ = (UniqueConstraint("dealer_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StaffSession(Base):
    """A signed-in staff console session. The browser holds a random token; only its SHA-256 is stored,
    so a leaked table cannot be replayed as cookies. Ended sessions stay (ended_at set) for the audit trail.
    """

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dealer_id: Mapped[int] = mapped_column(ForeignKey("dealer.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()


# Sign-in throttling counts recent failed sign-ins in the audit log (bot/console/auth.py): one index range per dealer.
Index("ix_audit_log_dealer_action_created", AuditLog.dealer_id, AuditLog.action, AuditLog.created_at)
# the console's audit log pages newest first by id
Index("ix_audit_log_dealer_id_id", AuditLog.dealer_id, AuditLog.id)
