"""Two dealers with an owner each (vehicle, conversation, ticket, appointment, survey answer), staff in
every role, and signed-in clients. Console tests read like: sign in as someone, do something, check."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from bot.db import Database
from bot.models import (
    Appointment,
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    ServiceRecord,
    Staff,
    StaffRole,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
)
from bot.passwords import hash_password
from tests.factories import make_customer, make_dealer

PASSWORD = "correct-horse-42"
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@dataclass
class Records:
    """One dealer's ids, named like the console's path parameters."""

    dealer_id: int
    slug: str
    ids: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)


@dataclass
class World:
    a: Records
    b: Records


def _owner_world(db: Database, slug: str, *, phone: str, plate: str, with_staff: tuple[str, ...]) -> Records:
    with db.transaction() as session:
        dealer = make_dealer(session, slug=slug)
        records = Records(dealer_id=dealer.id, slug=slug)
        for username in with_staff:
            role = StaffRole(username) if username in StaffRole.__members__ else StaffRole.agent
            staff = Staff(dealer_id=dealer.id, username=username, display_name=f"{username}-{slug}", role=role,
                          password_hash=_password_hash())
            session.add(staff)
            session.flush()
            records.staff[username] = staff.id
        customer = make_customer(session, dealer, phone=phone, plate=plate)
        session.add(ChannelIdentity(dealer_id=dealer.id, customer_id=customer.id, channel=Channel.sms, address=phone,
                                    last_inbound_at=NOW))
        conversation = Conversation(dealer_id=dealer.id, customer_id=customer.id, status=ConversationStatus.waiting_staff,
                                    handoff_reason="request", handed_off_at=NOW, last_channel=Channel.sms, last_message_at=NOW, created_at=NOW,
                                    updated_at=NOW)
        session.add(conversation)
        session.flush()
        message = Message(dealer_id=dealer.id, conversation_id=conversation.id, channel=Channel.sms, direction=Direction.inbound,
                          status=MessageStatus.handled, address=phone, text="我要转人工", intent="ask_human",
                          channel_message_id=f"SM-{slug}", created_at=NOW)
        ticket = Ticket(dealer_id=dealer.id, reference=f"C-{slug}-1", kind=TicketKind.complaint, customer_id=customer.id,
                        conversation_id=conversation.id, category="service", summary="等了两个小时",
                        sla_due_at=NOW + timedelta(hours=4), created_at=NOW)
        vehicle_id = session.scalar(_vehicle_id(customer.id))
        appointment = Appointment(dealer_id=dealer.id, reference=f"A-{slug}-1", customer_id=customer.id, vehicle_id=vehicle_id,
                                  service_type="minor_service", starts_at=NOW + timedelta(days=1),
                                  ends_at=NOW + timedelta(days=1, hours=1), bay=1)
        record = ServiceRecord(dealer_id=dealer.id, vehicle_id=vehicle_id, customer_id=customer.id, order_no=f"RO-{slug}-1",
                               service_type="minor_service", opened_on=(NOW - timedelta(days=3)).date(),
                               closed_at=NOW - timedelta(days=2), mileage=12000, summary="更换机油机滤")
        session.add_all([message, ticket, appointment, record])
        session.flush()
        survey = Survey(dealer_id=dealer.id, customer_id=customer.id, service_record_id=record.id, kind="csat",
                        sent_at=NOW - timedelta(days=1), created_at=NOW - timedelta(days=1))
        session.add(survey)
        session.flush()
        session.add(SurveyResponse(dealer_id=dealer.id, survey_id=survey.id, score=2, comment="太慢了", ticket_id=ticket.id,
                                   created_at=NOW - timedelta(hours=20)))
        records.ids = {"customer_id": customer.id, "conversation_id": conversation.id, "ticket_id": ticket.id,
                       "appointment_id": appointment.id, "vehicle_id": vehicle_id, "message_id": message.id,
                       "survey_id": survey.id}
        return records


def _vehicle_id(customer_id: int):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from bot.models import Vehicle

    return select(Vehicle.id).where(Vehicle.customer_id == customer_id)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return hash_password(PASSWORD)  # Argon2 is slow on purpose: once per test run is enough


@pytest.fixture
def world(db: Database) -> World:
    """Dealer A ("test": agent, manager, admin) and dealer B ("other": agent), each with one owner's records."""
    a = _owner_world(db, "test", phone="+8613800138000", plate="粤B12345", with_staff=("agent", "manager", "admin"))
    b = _owner_world(db, "other", phone="+8613900139000", plate="粤A99999", with_staff=("agent",))
    return World(a=a, b=b)


class Console:
    """A signed-in browser: `post` adds the session's CSRF token to every form."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def get(self, url: str, **kwargs: object) -> Response:
        return self.client.get(url, **kwargs)  # type: ignore[arg-type]

    def post(self, url: str, data: dict[str, object] | None = None, **kwargs: object) -> Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(url, data=form, **kwargs)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def sign_in(client: TestClient, username: str, dealer: str = "test") -> Console:
    token = csrf_of(client.get("/console/login").text)
    response = client.post("/console/login", data={"csrf_token": token, "dealer": dealer, "username": username,
                                                   "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return Console(client, csrf_of(client.get("/console/").text))


@pytest.fixture
def agent(client: TestClient, world: World) -> Console:
    """Dealer A's agent, signed in."""
    return sign_in(client, "agent")


@pytest.fixture
def manager(app, world: World) -> Console:  # type: ignore[no-untyped-def]
    """Dealer A's manager, signed in (a browser of their own)."""
    with TestClient(app) as own:
        yield sign_in(own, "manager")


class Clock:
    """The console's clock, set by the test."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(app) -> Clock:  # type: ignore[no-untyped-def]
    from bot.console.auth import get_clock

    fake = Clock()
    app.dependency_overrides[get_clock] = lambda: fake
    return fake
