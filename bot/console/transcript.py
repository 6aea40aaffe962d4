"""An owner's whole conversation as staff read it: messages on every channel and staff notes, oldest first."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Channel, Conversation, ConversationEvent, Direction, Message

NOTE = "note"  # ConversationEvent.kind of an internal note; never sent to the owner


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the transcript: a message in or out, or an internal note."""

    id: str  # "m12" or "n7": unique on the page, and what live updates compare
    side: str  # in, out, note
    channel: str
    sender: str  # owner, bot, scheduler, staff:<id>
    text: str
    created_at: datetime
    intent: str | None = None
    status: str | None = None

    @property
    def sender_kind(self) -> str:
        return self.sender.split(":", 1)[0]


def for_customer(session: Session, dealer_id: int, customer_id: int, *, limit: int = 200) -> list[Line]:
    """The owner's last `limit` messages and notes across all their conversations and channels."""
    conversations = select(Conversation.id).where(Conversation.dealer_id == dealer_id, Conversation.customer_id == customer_id)
    return _lines(session, dealer_id, conversations, limit)


def for_conversation(session: Session, dealer_id: int, conversation_id: int, *, limit: int = 200) -> list[Line]:
    return _lines(session, dealer_id, select(Conversation.id).where(Conversation.id == conversation_id,
                                                                     Conversation.dealer_id == dealer_id), limit)


def _lines(session: Session, dealer_id: int, conversations: object, limit: int) -> list[Line]:
    messages = session.execute(
        select(Message.id, Message.direction, Message.channel, Message.sender, Message.text, Message.kind,
               Message.created_at, Message.intent, Message.status)
        .where(Message.dealer_id == dealer_id, Message.conversation_id.in_(conversations))  # type: ignore[arg-type]
        .order_by(Message.id.desc())
        .limit(limit)
    ).all()
    notes = session.execute(
        select(ConversationEvent.id, ConversationEvent.actor, ConversationEvent.data, ConversationEvent.created_at)
        .where(ConversationEvent.dealer_id == dealer_id, ConversationEvent.kind == NOTE,
               ConversationEvent.conversation_id.in_(conversations))  # type: ignore[arg-type]
        .order_by(ConversationEvent.id.desc())
        .limit(limit)
    ).all()
    lines = [
        Line(id=f"m{m.id}", side="in" if m.direction == Direction.inbound else "out", channel=Channel(m.channel).value,
             sender=m.sender, text=m.text or f"[{m.kind}]", created_at=m.created_at, intent=m.intent,
             status=m.status.value if m.status else None)
        for m in messages
    ] + [
        Line(id=f"n{n.id}", side=NOTE, channel="console", sender=n.actor, text=str((n.data or {}).get("text", "")),
             created_at=n.created_at)
        for n in notes
    ]
    lines.sort(key=lambda line: (line.created_at, line.id))
    return lines[-limit:]
