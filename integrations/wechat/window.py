"""How many customer-service messages (客服消息) WeChat still lets us send an owner right now.

Since June 2023 an owner's message opens at most 5 customer-service messages within 48 hours;
a follow, a menu click or a QR scan opens 3 within one minute. Each new action of the owner
starts a new window. Passive replies (the webhook's own HTTP answer) do not count. Outside the
window only a subscription notice or a template message can reach the owner (the scheduler's
channel ladder asks here first).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import Channel, Direction, Message, Outbox, OutboxStatus

MESSAGE_WINDOW = timedelta(hours=48)
MESSAGE_QUOTA = 5
EVENT_WINDOW = timedelta(minutes=1)
EVENT_QUOTA = 3
# what counts as the owner acting: a message, or an event that opens the short window
OPENING_EVENTS = ("subscribe", "CLICK", "SCAN")


@dataclass(frozen=True, slots=True)
class Allowance:
    remaining: int
    closes_at: datetime | None  # when the window ends; None when there is none

    @property
    def open(self) -> bool:
        return self.remaining > 0


def allowance(session: Session, dealer_id: int, openid: str, now: datetime) -> Allowance:
    """Counts what is left of the window the owner's last action opened."""
    last = session.execute(
        select(Message.created_at, Message.kind, Message.payload)
        .where(
            Message.dealer_id == dealer_id,
            Message.channel == Channel.wechat,
            Message.address == openid,
            Message.direction == Direction.inbound,
        )
        .order_by(Message.created_at.desc())
        .limit(20)
    ).all()
    opened = next((row for row in last if _opens_window(row.kind, row.payload or {})), None)
    if opened is None:
        return Allowance(0, None)
    is_event = opened.kind == "event"
    closes_at = opened.created_at + (EVENT_WINDOW if is_event else MESSAGE_WINDOW)
    if now >= closes_at:
        return Allowance(0, None)
    sent = session.scalar(
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.dealer_id == dealer_id,
            Outbox.channel == Channel.wechat,
            Outbox.address == openid,
            Outbox.status.in_((OutboxStatus.sent, OutboxStatus.delivered, OutboxStatus.sending)),
            Outbox.sent_at >= opened.created_at,
            Outbox.provider_status.is_distinct_from("passive"),
        )
    )
    quota = EVENT_QUOTA if is_event else MESSAGE_QUOTA
    return Allowance(max(0, quota - (sent or 0)), closes_at)


def _opens_window(kind: str, payload: dict) -> bool:
    if kind != "event":
        return kind not in ("unparsed",)
    return payload.get("event") in OPENING_EVENTS
