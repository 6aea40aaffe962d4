"""The message road: store, find owner and conversation, lock, understand, respond, record.

Each inbound message is committed before any reply is computed. Its turn then runs in a
second transaction that holds the conversation's row lock, so the messages of one
conversation are handled one at a time and in the order they were stored, whichever request
thread gets the lock first: the lock holder always takes the oldest unhandled message.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import conversation_status, metrics
from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.messages import InboundMessage, Reply
from bot.models import (
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationStatus,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    Vehicle,
    utcnow,
)
from flows import engine, templates
from flows.turn import Context, Handoff, State, Turn, VehicleInfo
from nlu import NLU, Parse

log = logging.getLogger(__name__)

# Channels that answer the owner in the HTTP response itself. Their reply rows wait this long
# in the outbox for the channel to say "answered passively" before the dispatcher sends them.
PASSIVE_GRACE = {Channel.wechat: timedelta(seconds=5), Channel.sms: timedelta(seconds=15)}


class Pipeline:
    """Runs inbound messages down the road; one instance per process, safe across threads."""

    def __init__(
        self,
        *,
        db: Database,
        nlu: NLU,
        clock: Callable[[], datetime] = utcnow,
        threshold: float = 0.45,
        respond: Callable[[State, Parse, Context], Turn] = engine.respond,
    ) -> None:
        self.db = db
        self.nlu = nlu
        self.clock = clock
        self.threshold = threshold
        self.respond = respond
        self.dealers = DealerCache()

    def handle_inbound(self, inbound: InboundMessage) -> list[Reply]:
        """Stores the message, runs its bot turn once, and returns the replies to it."""
        with metrics.observe_pipeline(inbound.channel):
            message_id, conversation_id, status = self.store(inbound)
            if status == MessageStatus.received and conversation_id is not None:
                replies = self._drain(conversation_id, upto=message_id)
                if replies is not None:
                    return replies
            return self.replies_to(message_id)

    # -- step 1: store -------------------------------------------------------------------------

    def store(self, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus]:
        """Commits the message (or finds the stored one of a retry) and its conversation."""
        try:
            with self.db.transaction() as session:
                return self._store(session, inbound)
        except IntegrityError:
            # A concurrent retry of the same channel message won the insert: use its row.
            with self.db.transaction() as session:
                found = self._find_stored(session, inbound)
                if found is None:
                    raise
                return found
        except Exception:
            # Finding the owner failed: keep the message anyway, as a dead letter for staff.
            log.exception("could not file inbound message", extra={"dealer_id": inbound.dealer_id})
            with self.db.transaction() as session:
                found = self._find_stored(session, inbound)
                if found is not None:
                    return found
                row = self._message_row(inbound, conversation_id=None, status=MessageStatus.dead, now=self.clock())
                row["error"] = "could not find the owner or conversation"
                message_id = session.execute(insert(Message).returning(Message.id), [row]).scalar_one()
                return message_id, None, MessageStatus.dead

    def _store(self, session: Session, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus]:
        # No look-up first: a retry fails the unique constraint on insert and is answered from
        # the stored row (see store()); the common path pays for no extra query.
        now = self.clock()
        identity_id, customer_id = self._identity(session, inbound)
        session.execute(update(ChannelIdentity).where(ChannelIdentity.id == identity_id).values(last_inbound_at=now))
        conversation_id = self._open_conversation(session, inbound, customer_id)
        message_id = session.execute(
            insert(Message).returning(Message.id),
            [self._message_row(inbound, conversation_id=conversation_id, status=MessageStatus.received, now=now)],
        ).scalar_one()
        return message_id, conversation_id, MessageStatus.received

    def _find_stored(self, session: Session, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus] | None:
        if inbound.channel_message_id is None:
            return None
        row = session.execute(
            select(Message.id, Message.conversation_id, Message.status).where(
                Message.dealer_id == inbound.dealer_id,
                Message.channel == inbound.channel,
                Message.channel_message_id == inbound.channel_message_id,
            )
        ).first()
        return (row.id, row.conversation_id, MessageStatus(row.status)) if row else None

    @staticmethod
    def _message_row(
        inbound: InboundMessage, *, conversation_id: int | None, status: MessageStatus, now: datetime
    ) -> dict[str, Any]:
        return {
            "dealer_id": inbound.dealer_id,
            "conversation_id": conversation_id,
            "channel": inbound.channel,
            "channel_message_id": inbound.channel_message_id,
            "direction": Direction.inbound,
            "status": status,
            "address": inbound.address,
            "kind": inbound.kind,
            "text": inbound.text,
            "payload": inbound.payload,
            "sender": "owner",
            "created_at": now,
        }

    def _identity(self, session: Session, inbound: InboundMessage) -> tuple[int, int]:
        """Finds the channel identity and locks its customer, creating both the first time.

        The customer row lock orders the messages of one owner: message ids are handed out in
        lock order. It is NO KEY UPDATE, not UPDATE: a running turn's inserts check their
        foreign key to this row with a KEY SHARE lock, which FOR UPDATE would block (a deadlock
        with the conversation lock). For the same reason this step never writes the
        conversation row; the turn does.
        """
        query = (
            select(ChannelIdentity.id, ChannelIdentity.customer_id)
            .join(Customer, Customer.id == ChannelIdentity.customer_id)
            .where(
                ChannelIdentity.dealer_id == inbound.dealer_id,
                ChannelIdentity.channel == inbound.channel,
                ChannelIdentity.address == inbound.address,
            )
            .with_for_update(of=Customer, key_share=True)
        )
        row = session.execute(query).first()
        if row is not None:
            return row.id, row.customer_id
        customer_id = inbound.customer_id
        if customer_id is None:
            dealer_lang = session.scalar(select(Dealer.language).where(Dealer.id == inbound.dealer_id)) or "zh"
            customer = Customer(
                dealer_id=inbound.dealer_id,
                phone=inbound.address if inbound.channel == Channel.sms else None,
                language=dealer_lang,
            )
            session.add(customer)
            session.flush()
            customer_id = customer.id
        try:
            with session.begin_nested():
                identity = ChannelIdentity(
                    dealer_id=inbound.dealer_id, customer_id=customer_id, channel=inbound.channel, address=inbound.address
                )
                session.add(identity)
        except IntegrityError:
            pass  # another first message from this address created it a moment ago
        row = session.execute(query).one()
        return row.id, row.customer_id

    def _open_conversation(self, session: Session, inbound: InboundMessage, customer_id: int) -> int:
        """Returns the customer's open conversation, or opens one (one history across channels)."""
        conversation_id = session.scalar(
            select(Conversation.id)
            .where(
                Conversation.dealer_id == inbound.dealer_id,
                Conversation.customer_id == customer_id,
                Conversation.status != ConversationStatus.closed,
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
        if conversation_id is None:
            conversation = Conversation(dealer_id=inbound.dealer_id, customer_id=customer_id, state={})
            session.add(conversation)
            session.flush()
            conversation_id = conversation.id
        return conversation_id

    # -- step 2: one turn at a time, in order --------------------------------------------------

    def _drain(self, conversation_id: int, *, upto: int) -> list[Reply] | None:
        """Handles the conversation's unhandled messages in order, up to and including `upto`.

        Returns the replies to `upto` when this call ran its turn, None when another did.
        """
        while True:
            try:
                with self.db.transaction() as session:
                    conversation, message = self._lock_next(session, conversation_id)
                    if message is None or message.id > upto:
                        return None
                    replies = self._turn(session, conversation, message)
            except Exception:
                log.exception("bot turn failed", extra={"conversation_id": conversation_id})
                with self.db.transaction() as session:
                    conversation, message = self._lock_next(session, conversation_id)
                    if message is None or message.id > upto:
                        return None
                    replies = self._failed_turn(session, conversation, message)
            if message.id == upto:
                return replies

    def _lock_next(self, session: Session, conversation_id: int) -> tuple[Conversation, Message | None]:
        """Locks the conversation and returns it with its oldest unhandled message."""
        conversation = session.get_one(Conversation, conversation_id, with_for_update={"key_share": True})
        message = session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.inbound,
                Message.status == MessageStatus.received,
            )
            .order_by(Message.id)
            .limit(1)
        ).first()
        return conversation, message

    def _turn(self, session: Session, conversation: Conversation, message: Message) -> list[Reply]:
        now = self.clock()
        message.status = MessageStatus.handled
        message.handled_at = now
        conversation.last_message_at = message.created_at
        conversation.last_channel = message.channel
        if conversation.status in conversation_status.HANDED_OFF:
            # A person owns this conversation: the bot stays silent, the console shows the message.
            conversation_status.record_event(
                session=session, conversation=conversation, kind="message", actor="owner", data={"message_id": message.id}
            )
            return []

        dealer = self.dealers.get(session, message.dealer_id)
        customer = session.get_one(Customer, conversation.customer_id)
        lang = customer.language or dealer.language
        parse = self.nlu.parse(message.text, lang)
        message.intent = parse.name
        message.confidence = round(parse.confidence, 4)
        message.parse = parse.to_rasa()
        metrics.record_inbound(message.channel, parse.name)

        context = self._context(session, dealer, customer, lang, now)
        turn = self.respond(State.from_json(conversation.state), parse, context)
        conversation.state = turn.state.to_json()
        for effect in turn.effects:
            self._apply(session, conversation, effect)
        return self._add_replies(session, conversation, message, turn.replies, now)

    def _failed_turn(self, session: Session, conversation: Conversation, message: Message) -> list[Reply]:
        """Marks a message whose turn raised as dead and tells the owner politely."""
        customer = session.get_one(Customer, conversation.customer_id)
        now = self.clock()
        message.status = MessageStatus.dead
        message.handled_at = now
        message.error = "bot turn failed"
        conversation_status.record_event(
            session=session, conversation=conversation, kind="dead_letter", actor="bot", data={"message_id": message.id}
        )
        reply = Reply(templates.text("error.internal", customer.language))
        return self._add_replies(session, conversation, message, (reply,), now)

    def _context(self, session: Session, dealer: DealerView, customer: Customer, lang: str, now: datetime) -> Context:
        vehicles = session.execute(
            select(Vehicle.id, Vehicle.plate, Vehicle.model, Vehicle.last_service_date, Vehicle.last_service_mileage)
            .where(Vehicle.dealer_id == dealer.id, Vehicle.customer_id == customer.id)
            .order_by(Vehicle.id)
        ).all()
        return Context(
            now=now,
            lang=lang,
            dealer_name=dealer.name,
            dealer_phone=dealer.phone,
            timezone=dealer.timezone,
            config=dealer.config,
            customer_name=customer.name,
            vehicles=tuple(VehicleInfo(*row) for row in vehicles),
            threshold=self.threshold,
        )

    def _apply(self, session: Session, conversation: Conversation, effect: Any) -> None:
        if isinstance(effect, Handoff):
            conversation.handoff_reason = effect.reason
            conversation_status.move(
                session=session,
                conversation=conversation,
                to=ConversationStatus.waiting_staff,
                actor="bot",
                data={"reason": effect.reason, "urgent": effect.urgent},
            )
            return
        raise TypeError(f"unknown effect {effect!r}")

    def _add_replies(
        self, session: Session, conversation: Conversation, inbound: Message, replies: tuple[Reply, ...], now: datetime
    ) -> list[Reply]:
        """Stores the replies as outbound messages, each with its outbox row, in this transaction."""
        if not replies:
            return []
        message_ids = session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True),
            [
                {
                    "dealer_id": conversation.dealer_id,
                    "conversation_id": conversation.id,
                    "channel": inbound.channel,
                    "direction": Direction.outbound,
                    "status": MessageStatus.outgoing,
                    "address": inbound.address,
                    "text": reply.text,
                    "payload": {"buttons": list(reply.buttons)} if reply.buttons else {},
                    "reply_to_id": inbound.id,
                    "sender": "bot",
                    "created_at": now,
                }
                for reply in replies
            ],
        ).all()
        grace = PASSIVE_GRACE.get(inbound.channel)
        session.execute(
            insert(Outbox),
            [
                {
                    "dealer_id": conversation.dealer_id,
                    "customer_id": conversation.customer_id,
                    "conversation_id": conversation.id,
                    "message_id": message_id,
                    "dedupe_key": f"reply:{message_id}",
                    "kind": "reply",
                    "channel": inbound.channel,
                    "address": inbound.address,
                    "body": reply.as_plain_text(),
                    # the simulator shows replies from its HTTP answer and history: nothing to send
                    "status": OutboxStatus.pending if grace else OutboxStatus.sent,
                    "not_before": now + (grace or timedelta(0)),
                    "sent_at": None if grace else now,
                    "created_at": now,
                }
                for reply, message_id in zip(replies, message_ids, strict=True)
            ],
        )
        for _ in replies:
            metrics.record_outbound(inbound.channel)
        return [replace(reply, message_id=message_id) for reply, message_id in zip(replies, message_ids, strict=True)]

    # -- step 3: answer ------------------------------------------------------------------------

    def replies_to(self, message_id: int) -> list[Reply]:
        """Returns the bot's stored replies to one inbound message, in order."""
        with self.db.sessions() as session:
            rows = session.execute(
                select(Message.id, Message.text, Message.payload)
                .where(Message.reply_to_id == message_id, Message.sender == "bot")
                .order_by(Message.id)
            ).all()
        return [Reply(text=row.text, buttons=tuple((row.payload or {}).get("buttons", ())), message_id=row.id) for row in rows]


@dataclass(frozen=True, slots=True)
class DealerView:
    id: int
    name: str
    phone: str
    timezone: str
    language: str
    config: DealerConfig


class DealerCache:
    """Dealers as the turns see them, re-read after `ttl` so a settings change shows up soon.

    Every turn needs its dealer; reading and validating the configuration JSON each time was
    a measurable share of a turn.
    """

    def __init__(self, ttl: timedelta = timedelta(seconds=30)) -> None:
        self.ttl = ttl.total_seconds()
        self._views: dict[int, tuple[float, DealerView]] = {}

    def get(self, session: Session, dealer_id: int) -> DealerView:
        """Returns the dealer's view, from the cache while it is fresh."""
        cached = self._views.get(dealer_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        dealer = session.get_one(Dealer, dealer_id)
        view = DealerView(
            id=dealer.id,
            name=dealer.name,
            phone=dealer.phone,
            timezone=dealer.timezone,
            language=dealer.language,
            config=DealerConfig.model_validate(dealer.config or {}),
        )
        self._views[dealer_id] = (time.monotonic(), view)
        return view
