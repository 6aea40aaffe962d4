"""The owner simulator: chat as a demo owner in a browser, through the real pipeline.

The page (`GET /simulator`) plays a phone's messaging app; its script talks to three JSON
endpoints (see docs/simulator.md for examples):

`GET /simulator/api/owners?dealer=demo`
    The dealer's owners: ``[{id, name, phone_masked, language, tier, vehicles: [{plate, model}]}]``.

`POST /simulator/api/messages`
    Body ``{"dealer": "demo", "owner": 12, "text": "你好", "message_id": "optional-client-id"}``.
    Sends the text as that owner on the ``simulator`` channel and answers
    ``{message_id, inbound_id, replies: [{id, text, buttons}], parse, conversation: {id, status}}``;
    ``parse`` is what NLU understood (Rasa's ``/model/parse`` shape), null when the bot did not
    read the message (a person owns the conversation). Posting the same ``message_id`` again is a
    retry: nothing new is stored and the same replies come back. Unknown dealer or owner: 404;
    empty text: 422; text over 10,000 characters: 413.

`GET /simulator/api/messages?dealer=demo&owner=12&after=345`
    The owner's history, oldest first: every conversation on every channel, plus messages sent
    to one of the owner's addresses outside a conversation (reminders); only messages with an
    id above ``after`` when given: ``[{id, direction, sender, sender_name, text, intent,
    confidence, parse, buttons, reply_to_id, created_at, channel}]``. Staff replies and reminders
    appear here, which is why the page polls it.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from bot.deps import DatabaseDep, PipelineDep, SessionDep
from bot.messages import InboundMessage
from bot.models import Channel, ChannelIdentity, Conversation, Customer, Dealer, Message, Staff, Vehicle

router = APIRouter(tags=["simulator"])
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

MAX_TEXT = 10_000
HISTORY_LIMIT = 500
DealerSlug = Annotated[str, Query(min_length=1, max_length=64, description="the dealer's slug")]


# -- request and response bodies -----------------------------------------------------------------


class VehicleOut(BaseModel):
    plate: str
    model: str


class OwnerOut(BaseModel):
    id: int
    name: str
    phone_masked: str
    language: str
    tier: str
    vehicles: list[VehicleOut]


class SharedLocation(BaseModel):
    """A location the owner shares, as WeChat's location message carries it."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    label: str = Field(default="", max_length=200)


class SendMessage(BaseModel):
    dealer: str = Field(min_length=1, max_length=64)
    owner: int
    text: str = ""
    location: SharedLocation | None = None
    # the client's id for this message; sending it again is a retry, not a second message
    message_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")

    @model_validator(mode="after")
    def _text_or_location(self) -> SendMessage:
        if not self.text.strip() and self.location is None:
            raise ValueError("text must not be empty (or send a location)")
        return self


class ReplyOut(BaseModel):
    id: int | None
    text: str
    buttons: list[str]


class ConversationOut(BaseModel):
    id: int
    status: str


class SendResult(BaseModel):
    message_id: str
    inbound_id: int | None
    replies: list[ReplyOut]
    parse: dict[str, Any] | None
    conversation: ConversationOut | None


class HistoryItem(BaseModel):
    id: int
    direction: str  # "in" from the owner, "out" to the owner
    sender: str  # owner, bot, staff:<id>, scheduler
    sender_name: str | None
    text: str
    intent: str | None
    confidence: float | None
    parse: dict[str, Any] | None
    buttons: list[str]
    reply_to_id: int | None
    created_at: datetime
    channel: str


# -- routes --------------------------------------------------------------------------------------


@router.get("/simulator", response_class=HTMLResponse, include_in_schema=False)
def simulator_page(request: Request, dealer: DealerSlug = "demo") -> HTMLResponse:
    """Serves the chat page; its script and styles come from /static."""
    return templates.TemplateResponse(request, "simulator.html", {"dealer": dealer})


@router.get("/simulator/api/owners", response_model=list[OwnerOut])
def list_owners(session: SessionDep, dealer: DealerSlug = "demo") -> list[OwnerOut]:
    """Lists the dealer's owners with their cars, phone numbers masked."""
    found = _dealer_or_404(session, dealer)
    customers = session.scalars(select(Customer).where(Customer.dealer_id == found.id).order_by(Customer.id)).all()
    vehicles: dict[int, list[VehicleOut]] = {}
    for row in session.execute(
        select(Vehicle.customer_id, Vehicle.plate, Vehicle.model)
        .where(Vehicle.dealer_id == found.id)
        .order_by(Vehicle.customer_id, Vehicle.id)
    ):
        vehicles.setdefault(row.customer_id, []).append(VehicleOut(plate=row.plate, model=row.model))
    return [
        OwnerOut(
            id=c.id,
            name=c.name or f"#{c.id}",
            phone_masked=mask_phone(c.phone),
            language=c.language,
            tier=c.tier,
            vehicles=vehicles.get(c.id, []),
        )
        for c in customers
    ]


@router.post("/simulator/api/messages", response_model=SendResult)
def send_message(body: SendMessage, db: DatabaseDep, pipeline: PipelineDep) -> SendResult:
    """Sends a message as the owner through the pipeline and returns the bot's replies."""
    if len(body.text) > MAX_TEXT:
        raise HTTPException(status_code=413, detail=f"text is longer than {MAX_TEXT} characters")
    # Short transactions on purpose: the pipeline opens its own, and on SQLite an open
    # transaction here would hold the write lock it waits for.
    with db.transaction() as session:
        dealer = _dealer_or_404(session, body.dealer)
        owner = _owner_or_404(session, dealer, body.owner)
        dealer_id, owner_id = dealer.id, owner.id

    client_id = body.message_id or uuid.uuid4().hex
    inbound_message = simulator_message(
        dealer_id=dealer_id, customer_id=owner_id, text=body.text, client_id=client_id, location=body.location
    )
    channel_message_id = inbound_message.channel_message_id
    replies = pipeline.handle_inbound(inbound_message)

    with db.transaction() as session:
        inbound = session.scalars(
            select(Message).where(
                Message.dealer_id == dealer_id,
                Message.channel == Channel.simulator,
                Message.channel_message_id == channel_message_id,
            )
        ).first()
        conversation = session.get(Conversation, inbound.conversation_id) if inbound and inbound.conversation_id else None
        return SendResult(
            message_id=client_id,
            inbound_id=inbound.id if inbound else None,
            replies=[ReplyOut(id=r.message_id, text=r.text, buttons=list(r.buttons)) for r in replies],
            parse=inbound.parse if inbound else None,
            conversation=ConversationOut(id=conversation.id, status=conversation.status.value) if conversation else None,
        )


@router.get("/simulator/api/messages", response_model=list[HistoryItem])
def message_history(
    session: SessionDep,
    owner: int,
    dealer: DealerSlug = "demo",
    after: Annotated[int | None, Query(ge=0, description="only messages with a larger id")] = None,
    limit: Annotated[int, Query(ge=1, le=HISTORY_LIMIT)] = HISTORY_LIMIT,
) -> list[HistoryItem]:
    """Returns the owner's messages across conversations and channels, oldest first."""
    found = _dealer_or_404(session, dealer)
    customer = _owner_or_404(session, found, owner)
    messages = owner_history(session=session, dealer_id=found.id, customer_id=customer.id, after=after, limit=limit)
    names = _staff_names(session, found.id, messages)
    return [
        HistoryItem(
            id=m.id,
            direction=m.direction.value,
            sender=m.sender,
            sender_name=names.get(m.sender),
            text=m.text,
            intent=m.intent,
            confidence=m.confidence,
            parse=m.parse,
            buttons=[str(label) for label in (m.payload or {}).get("buttons", [])],
            reply_to_id=m.reply_to_id,
            created_at=m.created_at,
            channel=m.channel.value,
        )
        for m in messages
    ]


# -- queries shared with the terminal chat --------------------------------------------------------


def simulator_address(customer_id: int) -> str:
    """Returns the simulator channel's address for an owner."""
    return f"sim:{customer_id}"


def simulator_message(
    *, dealer_id: int, customer_id: int, text: str, client_id: str | None = None, location: SharedLocation | None = None
) -> InboundMessage:
    """Builds the inbound message of one simulator (web or terminal) send."""
    # Simulator message ids share one namespace per dealer: scope them to the owner, so one
    # owner's id can never be taken for another owner's retry.
    return InboundMessage(
        dealer_id=dealer_id,
        channel=Channel.simulator,
        address=simulator_address(customer_id),
        customer_id=customer_id,
        text=text or (location.label if location else ""),
        channel_message_id=f"{customer_id}:{client_id or uuid.uuid4().hex}",
        kind="location" if location else "text",
        payload=location.model_dump() if location else {},
    )


def owner_history(
    *, session: Session, dealer_id: int, customer_id: int, after: int | None = None, limit: int = HISTORY_LIMIT
) -> list[Message]:
    """Returns the owner's messages, oldest first: their conversations, and rows sent to any of their addresses."""
    conversations = select(Conversation.id).where(
        Conversation.dealer_id == dealer_id, Conversation.customer_id == customer_id
    )
    # a reminder or survey may be sent outside any conversation: find it by channel and address
    addresses = select(ChannelIdentity.channel, ChannelIdentity.address).where(
        ChannelIdentity.dealer_id == dealer_id, ChannelIdentity.customer_id == customer_id
    )
    query = select(Message).where(
        Message.dealer_id == dealer_id,
        or_(
            Message.conversation_id.in_(conversations),
            tuple_(Message.channel, Message.address).in_(addresses),
        ),
    )
    if after is not None:
        query = query.where(Message.id > after)
    return list(session.scalars(query.order_by(Message.id).limit(limit)))


def mask_phone(phone: str | None) -> str:
    """Masks a phone number for display: +8613812345678 becomes 138****5678."""
    if not phone:
        return ""
    digits = phone.removeprefix("+86") if phone.startswith("+86") else phone
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * (len(digits) - 4) + digits[-4:]


def _dealer_or_404(session: Session, slug: str) -> Dealer:
    dealer = session.scalars(select(Dealer).where(Dealer.slug == slug)).first()
    if dealer is None:
        raise HTTPException(status_code=404, detail=f"dealer {slug!r} not found")
    return dealer


def _owner_or_404(session: Session, dealer: Dealer, owner_id: int) -> Customer:
    customer = session.scalars(
        select(Customer).where(Customer.id == owner_id, Customer.dealer_id == dealer.id)
    ).first()
    if customer is None:
        raise HTTPException(status_code=404, detail=f"owner {owner_id} not found at dealer {dealer.slug!r}")
    return customer


def _staff_names(session: Session, dealer_id: int, messages: list[Message]) -> dict[str, str]:
    ids = {int(m.sender.removeprefix("staff:")) for m in messages if m.sender.startswith("staff:") and m.sender[6:].isdigit()}
    if not ids:
        return {}
    rows = session.execute(
        select(Staff.id, Staff.display_name, Staff.username).where(Staff.dealer_id == dealer_id, Staff.id.in_(ids))
    )
    return {f"staff:{row.id}": row.display_name or row.username for row in rows}
