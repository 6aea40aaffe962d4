"""What the store last reached out to an owner about, kept in their conversation.

When a reminder or survey goes out, the owner's answer ("好的", "4", "明天上午") only makes sense
next to it. So the dispatcher (bot/outbox.py), in the transaction that marks the row sent, files
the text as an outbound message in the owner's open conversation (opening one if none is) and
stores what it was about under `OUTREACH` in the conversation state; the pipeline hands it to
the flows while it is recent (`bot.pipeline.live_outreach`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import conversation_status
from bot.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    Survey,
)
from bot.pipeline import OUTREACH

SENDER = "scheduler"  # Message.sender of what the scheduler sent


def record(session: Session, row: Outbox, channel: Channel, address: str, now: datetime) -> Message:
    """Files the sent row as a message in the owner's conversation and remembers it in the state.

    Runs in the caller's transaction; locks the customer, then the conversation, in the order the
    pipeline does, so a turn running at the same moment neither loses this state nor has its own lost.
    """
    assert row.customer_id is not None, "outreach needs an owner"
    entry = outreach_of(row, now)
    conversation = _open_conversation(session, row.dealer_id, row.customer_id, channel, {OUTREACH: entry})
    # a new dict: the JSON column sees the change (a new conversation has it already)
    conversation.state = {**(conversation.state or {}), OUTREACH: entry}
    message = Message(
        dealer_id=row.dealer_id,
        conversation_id=conversation.id,
        channel=channel,
        direction=Direction.outbound,
        status=MessageStatus.outgoing,  # its delivery is the outbox row's
        address=address,
        text=row.body,
        payload={},
        sender=SENDER,
        created_at=now,
    )
    session.add(message)
    session.flush()
    row.conversation_id, row.message_id = conversation.id, message.id
    if conversation.status in conversation_status.HANDED_OFF:  # the person handling the owner sees it too
        conversation_status.record_event(
            session=session, conversation=conversation, kind="message", actor=SENDER, data={"message_id": message.id}
        )
    survey_id = (row.data or {}).get("survey_id")
    if row.kind == "survey" and survey_id is not None:
        session.execute(
            update(Survey)
            .where(Survey.id == survey_id, Survey.dealer_id == row.dealer_id, Survey.sent_at.is_(None))
            .values(sent_at=now)
        )
    return message


def outreach_of(row: Outbox, now: datetime) -> dict[str, Any]:
    """The state entry for a sent row: its kind, id and time, and its data (rule, vehicle, appointment...)."""
    return {**(row.data or {}), "kind": row.kind, "outbox_id": row.id, "sent_at": now.isoformat()}


def _open_conversation(
    session: Session, dealer_id: int, customer_id: int, channel: Channel, state: dict[str, Any]
) -> Conversation:
    """The owner's latest conversation that is not closed, locked; a new one when there is none.

    As in the pipeline: decided under the customer's row lock (NO KEY UPDATE, which the turn's
    foreign-key checks do not wait for), so an owner writing in at this moment gets the same one.
    """
    session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True)).one()
    conversation = session.scalars(
        select(Conversation)
        .where(
            Conversation.dealer_id == dealer_id,
            Conversation.customer_id == customer_id,
            Conversation.status != ConversationStatus.closed,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).first()
    if conversation is None:
        conversation = Conversation(dealer_id=dealer_id, customer_id=customer_id, state=state, last_channel=channel)
        session.add(conversation)
        session.flush()
    return conversation
