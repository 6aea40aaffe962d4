"""Messages to an owner that no inbound message asked for: ticket results, staff replies, reminders.

Each is stored as an outbound message in the owner's conversation (so the simulator, the console
and the history show it) and as an outbox row the dispatcher delivers. The simulator has nothing
to deliver: its rows are sent as they are written, and the simulator page reads the history.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.messages import Reply
from bot.models import (
    Channel,
    ChannelIdentity,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
)


def owner_address(session: Session, conversation: Conversation) -> tuple[Channel, str] | None:
    """The channel the owner last wrote on, and their address there (the reply goes back there)."""
    query = select(ChannelIdentity.channel, ChannelIdentity.address).where(
        ChannelIdentity.dealer_id == conversation.dealer_id, ChannelIdentity.customer_id == conversation.customer_id
    )
    if conversation.last_channel is not None:
        query = query.where(ChannelIdentity.channel == conversation.last_channel)
    row = session.execute(query.order_by(ChannelIdentity.last_inbound_at.desc().nulls_last()).limit(1)).first()
    return (Channel(row.channel), row.address) if row else None


def queue(
    session: Session,
    conversation: Conversation,
    reply: Reply,
    *,
    kind: str,
    sender: str,
    now: datetime,
    dedupe_key: str,
    data: dict[str, Any] | None = None,
) -> Message | None:
    """Stores the message and its outbox row in the caller's transaction; None if unreachable."""
    target = owner_address(session, conversation)
    if target is None:
        return None
    channel, address = target
    message = Message(
        dealer_id=conversation.dealer_id,
        conversation_id=conversation.id,
        channel=channel,
        direction=Direction.outbound,
        status=MessageStatus.outgoing,
        address=address,
        text=reply.text,
        payload={"buttons": list(reply.buttons)} if reply.buttons else {},
        sender=sender,
        created_at=now,
    )
    session.add(message)
    session.flush()
    immediate = channel in (Channel.simulator, Channel.console)
    session.add(
        Outbox(
            dealer_id=conversation.dealer_id,
            customer_id=conversation.customer_id,
            conversation_id=conversation.id,
            message_id=message.id,
            dedupe_key=dedupe_key,
            kind=kind,
            channel=channel,
            address=address,
            body=reply.as_plain_text(),
            data=data or {},
            status=OutboxStatus.sent if immediate else OutboxStatus.pending,
            not_before=now,
            sent_at=now if immediate else None,
            created_at=now,
        )
    )
    session.flush()
    return message
