"""One conversation at work: take it over, assign it, reply through the owner's channel, note, give it back.

Staff reply on the channel the owner last wrote on. On WeChat that works only within 48 hours of the owner's
last message (integrations/wechat/window.py); after that the page says so and offers SMS when the owner has a
number that has not opted out. Every action moves the status through bot/conversation_status.py (whose
events wake the other consoles) and writes an audit row.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import conversation_status, outbound
from bot.console import transcript
from bot.console.auth import Clock, CurrentStaff, StaffDep
from bot.console.rendering import render
from bot.console.scope import Refused, actor, audit, owned, page_router
from bot.console.text import register
from bot.dealer_config import DealerConfig
from bot.messages import Reply
from bot.models import (
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationStatus,
    Customer,
    Dealer,
    Staff,
    Ticket,
    TicketStatus,
    Vehicle,
)
from flows import templates
from integrations.wechat import window

router = page_router()
S = ConversationStatus
MAX_REPLY = 2000

register({
    "zh": {
        "conv_title": "对话", "conv_status": "状态", "conv_assignee": "处理人", "conv_take": "接管对话",
        "conv_assign": "转给同事", "conv_release": "交回机器人", "conv_reply": "回复车主", "conv_send": "发送",
        "conv_note": "添加内部备注", "conv_note_hint": "仅同事可见，不会发给车主", "conv_canned": "常用回复",
        "conv_via": "发送渠道", "conv_via_default": "车主最近使用的渠道", "conv_owner": "车主资料",
        "conv_vehicles": "车辆", "conv_reason": "转人工原因", "conv_tickets": "未结工单",
        "status_bot": "机器人处理中", "status_waiting_staff": "等待人工", "status_staff": "人工处理中", "status_closed": "已关闭",
        "conv_window_closed": "微信48小时客服消息窗口已关闭：回复无法通过微信送达，只能通过模板消息或短信联系车主。",
        "conv_window_open": "微信客服消息窗口剩余 {hours} 小时、{left} 条。",
        "conv_sms_opted_out": "车主已退订短信，无法通过短信发送。",
        "conv_no_channel": "车主没有可用的联系渠道。",
        "conv_not_taken": "请先接管对话再回复。",
        "conv_taken_by_other": "该对话已由 {name} 接管。",
        "conv_empty_reply": "回复内容不能为空。",
        "conv_too_long": "回复太长（最多 2000 字）。",
        "conv_sent": "已发送。", "conv_noted": "备注已保存。", "conv_released": "已交回机器人。", "conv_taken": "已接管。",
        "conv_assigned": "已转给同事。",
        "conv_bad_move": "当前状态下无法这样操作。",
    },
    "en": {
        "conv_title": "Conversation", "conv_status": "Status", "conv_assignee": "Handled by", "conv_take": "Take over",
        "conv_assign": "Assign to a colleague", "conv_release": "Give back to the bot", "conv_reply": "Reply to the owner",
        "conv_send": "Send", "conv_note": "Add an internal note", "conv_note_hint": "Only colleagues see it; never sent",
        "conv_canned": "Canned replies", "conv_via": "Send via", "conv_via_default": "The owner's last channel",
        "conv_owner": "Owner profile", "conv_vehicles": "Vehicles", "conv_reason": "Handed over because",
        "conv_tickets": "Open tickets",
        "status_bot": "With the bot", "status_waiting_staff": "Waiting for a person", "status_staff": "With staff",
        "status_closed": "Closed",
        "conv_window_closed": "WeChat's 48-hour window has closed: a reply cannot reach the owner on WeChat; only a template message or SMS can.",
        "conv_window_open": "WeChat window: {hours} h and {left} messages left.",
        "conv_sms_opted_out": "The owner has opted out of SMS.",
        "conv_no_channel": "The owner has no channel we can reach.",
        "conv_not_taken": "Take the conversation over before replying.",
        "conv_taken_by_other": "{name} has taken this conversation.",
        "conv_empty_reply": "The reply is empty.",
        "conv_too_long": "The reply is too long (2,000 characters at most).",
        "conv_sent": "Sent.", "conv_noted": "Note saved.", "conv_released": "Given back to the bot.", "conv_taken": "Taken over.",
        "conv_assigned": "Assigned.",
        "conv_bad_move": "That is not possible in the conversation's current state.",
    },
})


# -- what the page shows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """One way to reach the owner, and whether it works now."""

    channel: str
    address: str
    usable: bool
    why_not: str = ""  # a text key


@dataclass(frozen=True, slots=True)
class WindowState:
    open: bool
    hours_left: int = 0
    messages_left: int = 0


def routes_to_owner(session: Session, conversation: Conversation, now: datetime) -> tuple[list[Route], WindowState | None]:
    """The owner's channels for a staff reply, with WeChat's window when they have an openid."""
    identities = session.execute(
        select(ChannelIdentity.channel, ChannelIdentity.address, ChannelIdentity.opted_out, ChannelIdentity.unreachable)
        .where(ChannelIdentity.dealer_id == conversation.dealer_id, ChannelIdentity.customer_id == conversation.customer_id)
        .order_by(ChannelIdentity.last_inbound_at.desc().nulls_last())
    ).all()
    found: list[Route] = []
    state: WindowState | None = None
    for identity in identities:
        channel = Channel(identity.channel)
        if channel == Channel.wechat:
            allowance = window.allowance(session, conversation.dealer_id, identity.address, now)
            hours = int((allowance.closes_at - now).total_seconds() // 3600) if allowance.closes_at else 0
            state = WindowState(open=allowance.open, hours_left=hours, messages_left=allowance.remaining)
            usable, why = state.open and not identity.opted_out, "" if state.open else "conv_window_closed"
        elif channel == Channel.sms:
            usable, why = not (identity.opted_out or identity.unreachable), "conv_sms_opted_out" if identity.opted_out else ""
        else:
            usable, why = True, ""
        found.append(Route(channel.value, identity.address, usable, why))
    return found, state


def default_route(conversation: Conversation, found: list[Route]) -> Route | None:
    """The owner's last channel if it works now, else the first that does (SMS after WeChat's window)."""
    last = conversation.last_channel.value if conversation.last_channel else None
    usable = [route for route in found if route.usable]
    return next((route for route in usable if route.channel == last), usable[0] if usable else None)


def _names(session: Session, dealer_id: int) -> dict[str, str]:
    rows = session.execute(select(Staff.id, Staff.display_name, Staff.username).where(Staff.dealer_id == dealer_id)).all()
    return {f"staff:{row.id}": row.display_name or row.username for row in rows}


def _page(request: Request, staff: CurrentStaff, conversation_id: int, now: datetime, *, error: str | None = None,
          status_code: int = 200, draft: str = "") -> HTMLResponse:
    with request.app.state.db.sessions() as session:
        conversation = owned(session, Conversation, conversation_id, staff)
        customer = session.get_one(Customer, conversation.customer_id)
        vehicles = session.scalars(select(Vehicle).where(Vehicle.customer_id == customer.id, Vehicle.dealer_id == staff.dealer_id)).all()
        colleagues = session.execute(
            select(Staff.id, Staff.display_name, Staff.username)
            .where(Staff.dealer_id == staff.dealer_id, Staff.active.is_(True), Staff.id != staff.staff_id)
            .order_by(Staff.display_name)
        ).all()
        found, state = routes_to_owner(session, conversation, now)
        config = DealerConfig.model_validate(session.scalar(select(Dealer.config).where(Dealer.id == staff.dealer_id)) or {})
        dealer_name = session.scalar(select(Dealer.name).where(Dealer.id == staff.dealer_id)) or ""
        names = _names(session, staff.dealer_id)
        lines = transcript.for_conversation(session, staff.dealer_id, conversation.id)
        open_tickets = session.execute(
            select(Ticket.id, Ticket.reference, Ticket.kind, Ticket.status, Ticket.summary, Ticket.sla_due_at)
            .where(Ticket.dealer_id == staff.dealer_id, Ticket.customer_id == customer.id,
                   Ticket.status.not_in((TicketStatus.resolved, TicketStatus.closed)))
            .order_by(Ticket.urgent.desc(), Ticket.id.desc())
            .limit(10)
        ).all()
    owner_lang = customer.language if customer.language in ("zh", "en") else "zh"
    canned = [(c.title, (c.text_en if owner_lang == "en" and c.text_en else c.text_zh).replace("{dealer}", dealer_name))
              for c in config.canned_replies]
    return render(request, "conversation.html", staff=staff, now=now, status_code=status_code, conversation=conversation,
                  customer=customer, vehicles=vehicles, colleagues=colleagues, routes=found, window_state=state,
                  default=default_route(conversation, found), canned=canned, lines=lines, names=names,
                  assignee=names.get(f"staff:{conversation.handed_off_to}", ""), error=error, draft=draft, tickets=open_tickets,
                  done=_done(request.query_params.get("done")))


# the banner after an action: only these keys, so a crafted link cannot put its own words on the page
DONE = frozenset({"conv_taken", "conv_assigned", "conv_sent", "conv_noted", "conv_released"})


def _done(key: str | None) -> str | None:
    return key if key in DONE else None


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def show(request: Request, conversation_id: int, staff: StaffDep, clock: Clock) -> HTMLResponse:
    return _page(request, staff, conversation_id, clock())


@router.get("/conversations/{conversation_id}/transcript", response_class=HTMLResponse)
def transcript_rows(request: Request, conversation_id: int, staff: StaffDep) -> HTMLResponse:
    """The transcript alone: what the page swaps in when a live update arrives."""
    with request.app.state.db.sessions() as session:
        conversation = owned(session, Conversation, conversation_id, staff)
        lines = transcript.for_conversation(session, staff.dealer_id, conversation.id)
        names = _names(session, staff.dealer_id)
    return render(request, "_transcript.html", staff=staff, lines=lines, names=names)


# -- what staff do --------------------------------------------------------------------------------


def take(session: Session, conversation: Conversation, staff: CurrentStaff, now: datetime) -> None:
    """The viewer takes the conversation: from the queue, from a colleague, or straight from the bot."""
    status = S(conversation.status)
    if status == S.closed:
        raise Refused(409, "conv_bad_move")
    if status == S.bot:
        conversation.handoff_reason, conversation.handed_off_at, conversation.handoff_urgent = "staff", now, False
        conversation_status.move(session=session, conversation=conversation, to=S.waiting_staff, actor=actor(staff))
    if S(conversation.status) == S.waiting_staff:
        conversation_status.move(session=session, conversation=conversation, to=S.staff, actor=actor(staff),
                                 data={"staff_id": staff.staff_id})
    elif conversation.handed_off_to != staff.staff_id:
        conversation_status.record_event(session=session, conversation=conversation, kind="assign", actor=actor(staff),
                                         data={"staff_id": staff.staff_id, "from": conversation.handed_off_to})
    conversation.handed_off_to = staff.staff_id
    audit(session, staff, "conversation.take", customer_id=conversation.customer_id, target=f"conversation:{conversation.id}",
          now=now)


def assign(session: Session, conversation: Conversation, staff: CurrentStaff, colleague_id: int, now: datetime) -> None:
    colleague = session.get(Staff, colleague_id)
    if colleague is None or colleague.dealer_id != staff.dealer_id or not colleague.active:
        raise HTTPException(status_code=404, detail="not found / 找不到该同事")
    status = S(conversation.status)
    if status not in conversation_status.HANDED_OFF:
        raise Refused(409, "conv_bad_move")
    if status == S.waiting_staff:
        conversation_status.move(session=session, conversation=conversation, to=S.staff, actor=actor(staff),
                                 data={"staff_id": colleague.id})
    conversation_status.record_event(session=session, conversation=conversation, kind="assign", actor=actor(staff),
                                     data={"staff_id": colleague.id, "from": conversation.handed_off_to})
    conversation.handed_off_to = colleague.id
    audit(session, staff, "conversation.assign", customer_id=conversation.customer_id,
          target=f"conversation:{conversation.id}", now=now, to_staff=colleague.id)


def reply(session: Session, conversation: Conversation, staff: CurrentStaff, text: str, via: str, now: datetime) -> None:
    """Sends the owner a staff message on the chosen route (default: their last channel, if it works)."""
    text = text.strip()
    if not text:
        raise Refused(422, "conv_empty_reply")
    if len(text) > MAX_REPLY:
        raise Refused(422, "conv_too_long")
    status = S(conversation.status)
    if status == S.waiting_staff:
        take(session, conversation, staff, now)  # answering is taking: the queue must not offer it to a colleague
    elif status != S.staff:
        raise Refused(409, "conv_not_taken")
    found, _ = routes_to_owner(session, conversation, now)
    route = next((r for r in found if r.channel == via), None) if via else default_route(conversation, found)
    if route is None:
        chosen = next((r for r in found if r.channel == via), None) if via else None
        raise Refused(409, chosen.why_not if chosen and chosen.why_not else "conv_no_channel")
    if not route.usable:
        raise Refused(409, route.why_not or "conv_no_channel")
    message = outbound.queue(session, conversation, Reply(text), kind="staff_reply", sender=actor(staff), now=now,
                             dedupe_key=f"staff_reply:{conversation.id}:{staff.staff_id}:{now.isoformat()}",
                             channel=Channel(route.channel))
    if message is None:
        raise Refused(409, "conv_no_channel")
    conversation_status.record_event(session=session, conversation=conversation, kind="staff_reply", actor=actor(staff),
                                     data={"message_id": message.id})
    audit(session, staff, "conversation.reply", customer_id=conversation.customer_id,
          target=f"conversation:{conversation.id}", now=now, channel=route.channel, message_id=message.id)


def note(session: Session, conversation: Conversation, staff: CurrentStaff, text: str, now: datetime) -> None:
    text = text.strip()
    if not text:
        raise Refused(422, "conv_empty_reply")
    conversation_status.record_event(session=session, conversation=conversation, kind=transcript.NOTE, actor=actor(staff),
                                     data={"text": text[:MAX_REPLY]})
    audit(session, staff, "conversation.note", customer_id=conversation.customer_id,
          target=f"conversation:{conversation.id}", now=now)


def release(session: Session, conversation: Conversation, staff: CurrentStaff, now: datetime) -> None:
    """Gives the conversation back to the bot, and tells the owner the assistant is back."""
    status = S(conversation.status)
    if status not in conversation_status.HANDED_OFF:
        raise Refused(409, "conv_bad_move")
    if status == S.waiting_staff:
        conversation_status.move(session=session, conversation=conversation, to=S.staff, actor=actor(staff))
    conversation_status.move(session=session, conversation=conversation, to=S.bot, actor=actor(staff))
    conversation.handed_off_to = None
    conversation.state = {}  # the bot starts afresh: whatever flow was open before the person took over is stale
    language = session.scalar(select(Customer.language).where(Customer.id == conversation.customer_id)) or "zh"
    outbound.queue(session, conversation, Reply(templates.text("handoff.released", language)), kind="staff_release",
                   sender=actor(staff), now=now, dedupe_key=f"staff_release:{conversation.id}:{now.isoformat()}")
    audit(session, staff, "conversation.release", customer_id=conversation.customer_id,
          target=f"conversation:{conversation.id}", now=now)


# -- the forms ------------------------------------------------------------------------------------


def _act(request: Request, staff: CurrentStaff, conversation_id: int, now: datetime, done: str, action, *,  # type: ignore[no-untyped-def]
         draft: str = "") -> Response:
    try:
        with request.app.state.db.transaction() as session:
            conversation = owned(session, Conversation, conversation_id, staff, lock=True)
            action(session, conversation)
    except Refused as refused:
        return _page(request, staff, conversation_id, now, error=refused.key, status_code=refused.status_code, draft=draft)
    return RedirectResponse(f"/console/conversations/{conversation_id}?done={done}", status_code=303)


@router.post("/conversations/{conversation_id}/take")
def take_form(request: Request, conversation_id: int, staff: StaffDep, clock: Clock) -> Response:
    now = clock()
    return _act(request, staff, conversation_id, now, "conv_taken", lambda s, c: take(s, c, staff, now))


@router.post("/conversations/{conversation_id}/assign")
def assign_form(request: Request, conversation_id: int, staff: StaffDep, clock: Clock,
                staff_id: Annotated[int, Form()]) -> Response:
    now = clock()
    return _act(request, staff, conversation_id, now, "conv_assigned", lambda s, c: assign(s, c, staff, staff_id, now))


@router.post("/conversations/{conversation_id}/reply")
def reply_form(request: Request, conversation_id: int, staff: StaffDep, clock: Clock,
               text: Annotated[str, Form(max_length=MAX_REPLY * 2)] = "",
               via: Annotated[str, Form(max_length=16)] = "") -> Response:
    now = clock()
    return _act(request, staff, conversation_id, now, "conv_sent", lambda s, c: reply(s, c, staff, text, via, now), draft=text)


@router.post("/conversations/{conversation_id}/note")
def note_form(request: Request, conversation_id: int, staff: StaffDep, clock: Clock,
              text: Annotated[str, Form(max_length=MAX_REPLY * 2)] = "") -> Response:
    now = clock()
    return _act(request, staff, conversation_id, now, "conv_noted", lambda s, c: note(s, c, staff, text, now))


@router.post("/conversations/{conversation_id}/release")
def release_form(request: Request, conversation_id: int, staff: StaffDep, clock: Clock) -> Response:
    now = clock()
    return _act(request, staff, conversation_id, now, "conv_released", lambda s, c: release(s, c, staff, now))
