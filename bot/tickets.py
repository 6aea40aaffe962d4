"""Staff work on tickets: resolving one sends the owner the result and asks if it is settled."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot import conversation_status, outbound
from bot.messages import Reply
from bot.models import (
    Conversation,
    ConversationStatus,
    Customer,
    Ticket,
    TicketKind,
    TicketStatus,
)
from flows import complaint, templates


class TicketError(ValueError):
    """A ticket operation that does not fit the ticket's state."""


# What staff may move a ticket to, from each status: forward only, and a resolved ticket may be reopened.
# (The owner's own "还没有" after a result reopens a complaint too: flows/complaint.py, bot/effects.py.)
MOVES: dict[TicketStatus, tuple[TicketStatus, ...]] = {
    TicketStatus.new: (TicketStatus.acknowledged,),
    TicketStatus.acknowledged: (TicketStatus.in_progress,),
    TicketStatus.in_progress: (TicketStatus.resolved,),
    TicketStatus.resolved: (TicketStatus.closed, TicketStatus.in_progress),
    TicketStatus.closed: (),
}


def reopen(session: Session, ticket: Ticket) -> None:
    """Back to work after a result: the owner is no longer asked whether that result settled it."""
    if ticket.status != TicketStatus.resolved:
        raise TicketError(f"ticket {ticket.reference} is {ticket.status.value}, not resolved")
    ticket.status, ticket.resolved_at = TicketStatus.in_progress, None
    conversation = session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    if conversation is not None and conversation.state == complaint.followup_state(ticket.reference).to_json():
        conversation.state = {}


def resolve(session: Session, ticket: Ticket, *, result: str, actor: str, now: datetime) -> None:
    """Marks the ticket resolved with the result the owner reads, and asks the owner about it.

    The conversation goes back to the bot so that the owner's answer reaches the follow-up:
    "已解决" closes the matter, "还没有" reopens the ticket and hands it to a person again.
    """
    if ticket.status in (TicketStatus.resolved, TicketStatus.closed):
        raise TicketError(f"ticket {ticket.reference} is already {ticket.status.value}")
    if not result.strip():
        raise TicketError("a resolution needs the result the owner will read")
    ticket.status, ticket.result, ticket.resolved_at = TicketStatus.resolved, result.strip(), now
    conversation = session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    if conversation is None:
        return
    customer = session.get_one(Customer, ticket.customer_id)
    lang = customer.language or "zh"
    if ticket.kind == TicketKind.roadside:
        # the rescue is over: the owner hears the outcome; there is nothing to ask back
        outbound.queue(session, conversation, Reply(templates.text("roadside.result", lang, reference=ticket.reference,
                                                                   result=ticket.result)),
                       kind="ticket_result", sender=actor, now=now,
                       dedupe_key=f"ticket_result:{ticket.id}:{now.isoformat()}", data={"ticket": ticket.reference})
        return
    _give_back_to_bot(session, conversation, actor)
    conversation.state = complaint.followup_state(ticket.reference).to_json()
    outbound.queue(
        session,
        conversation,
        complaint.result_message(ticket.result, ticket.reference, lang),
        kind="ticket_result",
        sender=actor,
        now=now,
        dedupe_key=f"ticket_result:{ticket.id}:{now.isoformat()}",
        data={"ticket": ticket.reference},
    )


def _give_back_to_bot(session: Session, conversation: Conversation, actor: str) -> None:
    status = ConversationStatus(conversation.status)
    if status == ConversationStatus.waiting_staff:
        conversation_status.move(session=session, conversation=conversation, to=ConversationStatus.staff, actor=actor)
        status = ConversationStatus.staff
    if status == ConversationStatus.staff:
        conversation_status.move(session=session, conversation=conversation, to=ConversationStatus.bot, actor=actor)
