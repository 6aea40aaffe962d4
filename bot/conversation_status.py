"""The conversation status machine: bot -> waiting_staff -> staff -> bot | closed, bot -> closed."""
from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.models import Conversation, ConversationEvent, ConversationStatus

S = ConversationStatus

TRANSITIONS: dict[ConversationStatus, frozenset[ConversationStatus]] = {
    S.bot: frozenset({S.waiting_staff, S.closed}),
    S.waiting_staff: frozenset({S.staff}),
    S.staff: frozenset({S.bot, S.closed}),
    S.closed: frozenset(),
}

# Statuses in which the bot stays silent: a person owns the conversation or is about to.
HANDED_OFF = frozenset({S.waiting_staff, S.staff})


class ConversationRef(Protocol):
    """Enough of a conversation to file an event against it (an ORM row or a selected tuple)."""

    @property
    def id(self) -> int: ...

    @property
    def dealer_id(self) -> int: ...


class IllegalTransition(ValueError):
    """A status move that the table does not allow."""


def move(
    *,
    session: Session,
    conversation: Conversation,
    to: ConversationStatus,
    actor: str,
    data: dict[str, Any] | None = None,
) -> ConversationEvent:
    """Moves the conversation to a new status and records the event the console listens to."""
    current = ConversationStatus(conversation.status)
    if to not in TRANSITIONS[current]:
        raise IllegalTransition(f"conversation {conversation.id}: {current.value} -> {to.value} is not allowed")
    conversation.status = to
    event = ConversationEvent(
        dealer_id=conversation.dealer_id,
        conversation_id=conversation.id,
        kind="status",
        from_status=current.value,
        to_status=to.value,
        actor=actor,
        data=data or {},
    )
    session.add(event)
    return event


def record_event(
    *, session: Session, conversation: ConversationRef, kind: str, actor: str, data: dict[str, Any] | None = None
) -> ConversationEvent:
    """Records a non-status event (a message staff should see, a note, an assignment)."""
    event = ConversationEvent(
        dealer_id=conversation.dealer_id,
        conversation_id=conversation.id,
        kind=kind,
        actor=actor,
        data=data or {},
    )
    session.add(event)
    return event
