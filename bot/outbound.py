"""Messages to an owner that no inbound message asked for: ticket results, staff replies, reminders.

Each is stored as an outbound message in the owner's conversation (so the simulator, the console
and the history show it) and as an outbox row the dispatcher delivers. The simulator has nothing
to deliver: its rows are sent as they are written, and the simulator page reads the history.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, select
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


class ConversationLike(Protocol):
    """A conversation row or a lighter reference to one: all a reply needs to be filed."""

    @property
    def id(self) -> int: ...
    @property
    def dealer_id(self) -> int: ...
    @property
    def customer_id(self) -> int: ...


def owner_address(session: Session, conversation: Conversation, channel: Channel | None = None) -> tuple[Channel, str] | None:
    """The owner's address on `channel`, by default the channel they last wrote on (the reply goes back there)."""
    query = select(ChannelIdentity.channel, ChannelIdentity.address).where(
        ChannelIdentity.dealer_id == conversation.dealer_id, ChannelIdentity.customer_id == conversation.customer_id
    )
    channel = channel or conversation.last_channel
    if channel is not None:
        query = query.where(ChannelIdentity.channel == channel)
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
    channel: Channel | None = None,
) -> Message | None:
    """Stores the message and its outbox row in the caller's transaction; None if unreachable.

    It goes to the channel the owner last wrote on, or to `channel` when staff chose one (SMS when WeChat's
    48-hour window has closed)."""
    target = owner_address(session, conversation, channel)
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


def add_reply(
    session: Session,
    conversation: ConversationLike,
    channel: Channel,
    address: str,
    reply_to: int,
    body: str,
    now: datetime,
    *,
    kind: str = "reply",
) -> int:
    """Stores a fixed reply to an inbound message like a turn's: an outbound message and its
    outbox row, pending for the channel's passive grace (the webhook may answer it itself)."""
    from bot.pipeline import PASSIVE_GRACE

    grace = PASSIVE_GRACE.get(channel)
    conn = session.connection()
    reply_id = conn.execute(
        insert(Message).returning(Message.id),
        [
            {
                "dealer_id": conversation.dealer_id,
                "conversation_id": conversation.id,
                "channel": channel,
                "direction": Direction.outbound,
                "status": MessageStatus.outgoing,
                "address": address,
                "kind": "text",
                "text": body,
                "payload": {},
                "reply_to_id": reply_to,
                "sender": "bot",
                "created_at": now,
            }
        ],
    ).scalar_one()
    conn.execute(
        insert(Outbox),
        [
            {
                "dealer_id": conversation.dealer_id,
                "customer_id": conversation.customer_id,
                "conversation_id": conversation.id,
                "message_id": reply_id,
                "dedupe_key": f"reply:{reply_id}",
                "kind": kind,
                "channel": channel,
                "address": address,
                "body": body,
                "data": {},
                "status": OutboxStatus.pending if grace else OutboxStatus.sent,
                "not_before": now + (grace or timedelta(0)),
                "sent_at": None if grace else now,
                "attempts": 0,
                "created_at": now,
            }
        ],
    )
    return reply_id
