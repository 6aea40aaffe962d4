"""The inbox: conversations waiting for a person, urgent roadside first, then complaints, then the rest.

Each waiting conversation runs an SLA clock from the moment the bot handed it over (Conversation.handed_off_at),
with the dealer's minutes (DealerConfig.sla_minutes: "urgent", "complaint", "handoff"). Conversations a person
has taken are listed below, the viewer's own first. The page refreshes its rows live (bot/console/live.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from bot.console.auth import Clock, StaffDep
from bot.console.rendering import countdown, render
from bot.console.scope import page_router
from bot.console.text import register
from bot.dealer_config import DealerConfig
from bot.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Dealer,
    Direction,
    Message,
    Staff,
)

router = page_router()
LIMIT = 1000  # a dealer with more open conversations than this has a staffing problem the page cannot fix

URGENT, COMPLAINT, OTHER = 0, 1, 2
SLA_KEY = {URGENT: "urgent", COMPLAINT: "complaint", OTHER: "handoff"}

register({
    "zh": {"inbox_waiting": "待接入", "inbox_taken": "处理中", "inbox_owner": "车主", "inbox_reason": "原因",
           "inbox_last": "最新消息", "inbox_sla": "响应时限", "inbox_by": "处理人", "inbox_open": "打开",
           "inbox_overdue": "已超时", "inbox_none_taken": "暂无处理中的对话。",
           "reason_roadside": "道路救援", "reason_complaint": "投诉", "reason_request": "车主要求人工",
           "reason_misunderstood": "机器人未理解", "reason_booking": "预约", "reason_insurance": "续保",
           "reason_staff": "客服主动接入", "reason_other": "其他"},
    "en": {"inbox_waiting": "Waiting", "inbox_taken": "In progress", "inbox_owner": "Owner", "inbox_reason": "Reason",
           "inbox_last": "Latest message", "inbox_sla": "Respond within", "inbox_by": "Handled by", "inbox_open": "Open",
           "inbox_overdue": "Overdue", "inbox_none_taken": "No conversations in progress.",
           "reason_roadside": "Roadside", "reason_complaint": "Complaint", "reason_request": "Asked for a person",
           "reason_misunderstood": "Bot did not understand", "reason_booking": "Booking", "reason_insurance": "Insurance",
           "reason_staff": "Taken by staff", "reason_other": "Other"},
})


@dataclass(frozen=True, slots=True)
class InboxItem:
    conversation_id: int
    customer_id: int
    owner: str
    phone: str
    status: str
    reason: str
    rank: int
    waiting_since: datetime | None
    sla_due: datetime | None
    assignee_id: int | None
    assignee: str
    channel: str
    last_text: str
    sla_left: str = ""  # "12:05", or "-3:10" once overdue
    overdue: bool = False


@dataclass(frozen=True, slots=True)
class Inbox:
    waiting: list[InboxItem]
    taken: list[InboxItem]


def rank_of(reason: str | None, urgent: bool) -> int:
    if reason == "roadside" or urgent:
        return URGENT
    return COMPLAINT if reason == "complaint" else OTHER


def load(session: Session, dealer_id: int, viewer_id: int, now: datetime) -> Inbox:
    """Everything the inbox shows in three queries, however many conversations wait."""
    config = DealerConfig.model_validate(session.scalar(select(Dealer.config).where(Dealer.id == dealer_id)) or {})
    rank = case(
        (or_(Conversation.handoff_reason == "roadside", Conversation.handoff_urgent.is_(True)), URGENT),
        (Conversation.handoff_reason == "complaint", COMPLAINT),
        else_=OTHER,
    )
    last_text = (
        select(Message.text)
        .where(Message.conversation_id == Conversation.id, Message.direction == Direction.inbound)
        .order_by(Message.id.desc())
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Conversation.id, Conversation.customer_id, Conversation.status, Conversation.handoff_reason,
               Conversation.handoff_urgent, Conversation.handed_off_at, Conversation.handed_off_to,
               Conversation.last_channel, Conversation.last_message_at, Customer.name, Customer.phone,
               Staff.display_name, Staff.username, last_text.label("last_text"))
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(Staff, Staff.id == Conversation.handed_off_to)
        .where(Conversation.dealer_id == dealer_id,
               Conversation.status.in_((ConversationStatus.waiting_staff, ConversationStatus.staff)))
        .order_by(rank, Conversation.handed_off_at.asc().nulls_last(), Conversation.id)
        .limit(LIMIT)
    ).all()
    waiting: list[InboxItem] = []
    taken: list[InboxItem] = []
    for row in rows:
        item_rank = rank_of(row.handoff_reason, row.handoff_urgent)
        since = row.handed_off_at or row.last_message_at
        due = since + timedelta(minutes=config.sla_minutes.get(SLA_KEY[item_rank], 60)) if since else None
        left, overdue = countdown(due, now)
        item = InboxItem(
            conversation_id=row.id, customer_id=row.customer_id, owner=row.name or "", phone=row.phone or "",
            status=ConversationStatus(row.status).value, reason=row.handoff_reason or "other", rank=item_rank,
            waiting_since=since,
            sla_due=due, sla_left=left, overdue=overdue,
            assignee_id=row.handed_off_to, assignee=row.display_name or row.username or "",
            channel=row.last_channel.value if row.last_channel else "", last_text=(row.last_text or "")[:120],
        )
        (waiting if row.status == ConversationStatus.waiting_staff else taken).append(item)
    taken.sort(key=lambda item: item.assignee_id != viewer_id)  # stable: mine first, each part in queue order
    return Inbox(waiting=waiting, taken=taken)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, staff: StaffDep, clock: Clock) -> HTMLResponse:
    with request.app.state.db.sessions() as session:
        now = clock()
        inbox = load(session, staff.dealer_id, staff.staff_id, now)
    return render(request, "inbox.html", staff=staff, inbox=inbox, now=now)


@router.get("/inbox/rows", response_class=HTMLResponse)
def rows(request: Request, staff: StaffDep, clock: Clock) -> HTMLResponse:
    """The inbox's lists alone: what the page swaps in when a live update arrives."""
    with request.app.state.db.sessions() as session:
        now = clock()
        inbox = load(session, staff.dealer_id, staff.staff_id, now)
    return render(request, "_inbox_rows.html", staff=staff, inbox=inbox, now=now)
