"""The message road: store, find owner and conversation, lock, understand, respond, record.

Each inbound message is committed before any reply is computed. Its turn then runs in a
second transaction that holds the conversation's row lock, so the messages of one
conversation are handled one at a time and in the order they were stored, whichever request
thread gets the lock first: the lock holder always takes the oldest unhandled message.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    TextClause,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from bot import conversation_status, effects, metrics
from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.messages import InboundMessage, Reply
from bot.models import (
    Appointment,
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
from flows.turn import (
    AppointmentInfo,
    Booked,
    Context,
    Location,
    State,
    Turn,
    VehicleInfo,
)
from nlu import NLU, Parse
from nlu.understand import understand

log = logging.getLogger(__name__)

# Channels that answer the owner in the HTTP response itself. Their reply rows wait this long
# in the outbox for the channel to say "answered passively" before the dispatcher sends them.
PASSIVE_GRACE = {Channel.wechat: timedelta(seconds=5), Channel.sms: timedelta(seconds=15)}


# The hot path's statements, built once: building a statement cost more than running it.
_OLDEST_UNHANDLED = (
    select(func.min(Message.id))
    .where(
        Message.conversation_id == Conversation.id,
        Message.direction == Direction.inbound,
        Message.status == MessageStatus.received,
    )
    .correlate(Conversation)
    .scalar_subquery()
)
# A conversation's oldest unhandled message, the owner and their vehicles (a row per vehicle).
LOCK_NEXT = (
    select(
        Conversation.id,
        Conversation.dealer_id,
        Conversation.customer_id,
        Conversation.status,
        Conversation.state,
        Conversation.last_handled_id,
        Message.id.label("message_id"),
        Message.channel,
        Message.address,
        Message.text,
        Message.kind,
        Message.payload,
        Message.created_at,
        Customer.name.label("customer_name"),
        Customer.language.label("customer_language"),
        Vehicle.id.label("vehicle_id"),
        Vehicle.plate,
        Vehicle.model,
        Vehicle.last_service_date,
        Vehicle.last_service_mileage,
    )
    .join(Customer, Customer.id == Conversation.customer_id)
    .outerjoin(Message, Message.id == _OLDEST_UNHANDLED)
    .outerjoin(Vehicle, and_(Vehicle.customer_id == Customer.id, Vehicle.dealer_id == Conversation.dealer_id))
    .where(Conversation.id == bindparam("conversation_id"))
    .order_by(Vehicle.id)
)
# Takes the lock only if it is free: then nothing was waited for and the snapshot is current.
LOCK_NEXT_IF_FREE = LOCK_NEXT.with_for_update(of=Conversation, key_share=True, skip_locked=True)
WAIT_FOR_LOCK = select(Conversation.id).where(Conversation.id == bindparam("conversation_id")).with_for_update(key_share=True)
# Only a message still unhandled is marked: see Pipeline._lock_next for why that matters.
MARK_HANDLED = (
    update(Message)
    .where(Message.id == bindparam("message_id"), Message.status == MessageStatus.received)
)
TOUCH_CONVERSATION = update(Conversation).where(Conversation.id == bindparam("conversation_id"))
_OPEN_CONVERSATION = (
    select(Conversation.id)
    .where(
        Conversation.dealer_id == ChannelIdentity.dealer_id,
        Conversation.customer_id == ChannelIdentity.customer_id,
        Conversation.status != ConversationStatus.closed,
    )
    .order_by(Conversation.id.desc())
    .limit(1)
    .correlate(ChannelIdentity)
    .scalar_subquery()
)
_THIS_IDENTITY = (
    ChannelIdentity.dealer_id == bindparam("p_dealer_id"),
    ChannelIdentity.channel == bindparam("p_channel"),
    ChannelIdentity.address == bindparam("p_address"),
)
# The owner's identity on this channel with their open conversation.
FIND_IDENTITY = select(ChannelIdentity.id, ChannelIdentity.customer_id, _OPEN_CONVERSATION).where(*_THIS_IDENTITY)
# Touching the identity row holds its lock until commit, so the messages from one address get
# their ids in arrival order. (Bind names differ from column names: SQLAlchemy keeps those for SET.)
TOUCH_IDENTITY = update(ChannelIdentity).where(ChannelIdentity.id == bindparam("p_identity_id"))
# PostgreSQL only: touch and find in one statement. Not on SQLite, which writes a RETURNING
# clause's columns unqualified: inside the subquery "customer_id = customer_id" would then
# compare the conversation with itself and file every owner's message under one conversation.
TOUCH_AND_FIND_IDENTITY = (
    update(ChannelIdentity)
    .where(*_THIS_IDENTITY)
    .values(last_inbound_at=bindparam("p_now"))
    .returning(ChannelIdentity.id, ChannelIdentity.customer_id, _OPEN_CONVERSATION.label("open_conversation_id"))
)
INSERT_MESSAGE = insert(Message).returning(Message.id)

# PostgreSQL only: the whole store of a known owner with an open conversation as one statement,
# run in autocommit, so a message is durable after a single round trip. The identity UPDATE
# locks its row until the statement commits, which hands out message ids in arrival order.
# Anyone else (a first message, no open conversation) yields no row and takes the general path.
_TOUCHED = TOUCH_AND_FIND_IDENTITY.cte("touched")
_m = Message.__table__.c
STORE_AT_ONCE = (
    insert(Message)
    .from_select(
        ["dealer_id", "conversation_id", "channel", "channel_message_id", "direction", "status", "address", "kind",
         "text", "payload", "sender", "created_at"],
        select(
            bindparam("p_dealer_id", type_=_m.dealer_id.type),
            _TOUCHED.c.open_conversation_id,
            bindparam("p_channel", type_=_m.channel.type),
            bindparam("m_channel_message_id", type_=_m.channel_message_id.type),
            bindparam("m_direction", Direction.inbound, type_=_m.direction.type),
            bindparam("m_status", MessageStatus.received, type_=_m.status.type),
            bindparam("p_address", type_=_m.address.type),
            bindparam("m_kind", type_=_m.kind.type),
            bindparam("m_text", type_=_m.text.type),
            bindparam("m_payload", type_=_m.payload.type),
            bindparam("m_sender", "owner", type_=_m.sender.type),
            bindparam("p_now", type_=_m.created_at.type),
        ).where(_TOUCHED.c.open_conversation_id.is_not(None)),
    )
    .add_cte(_TOUCHED)
    .returning(Message.id, Message.conversation_id)
)


def record_turn_sql(replies: int) -> TextClause:
    """PostgreSQL: everything a turn writes, in one statement (the turn is then four round trips).

    Marks the message handled (only if it still is unhandled: see Pipeline._lock_next), moves
    the conversation on, and stores each reply as an outbound message with its outbox row.
    Reply ids are drawn from the message sequence first, so each outbox row knows its message;
    the foreign keys are checked at the end of the statement, when both rows exist. Nothing but
    the mark happens when the message was handled meanwhile.
    """
    rows = ", ".join(f"({i}, :text_{i}, CAST(:payload_{i} AS JSON), :body_{i})" for i in range(replies))
    reply_ctes = f"""
    , replies (ord, text, payload, body) AS (VALUES {rows})
    , ids AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('message', 'id')) AS id, ord FROM replies
        WHERE EXISTS (SELECT 1 FROM marked)
    )
    , messages AS (
        INSERT INTO message (id, dealer_id, conversation_id, channel, direction, status, address, kind, text,
                             payload, reply_to_id, sender, created_at)
        SELECT ids.id, :dealer_id, :conversation_id, :channel, 'out', 'outgoing', :address, 'text', r.text,
               r.payload, :message_id, 'bot', :now
        FROM ids JOIN replies r USING (ord)
    )
    , outbox_rows AS (
        INSERT INTO outbox (dealer_id, customer_id, conversation_id, message_id, dedupe_key, kind, channel,
                            address, body, data, status, not_before, attempts, sent_at, created_at)
        SELECT :dealer_id, :customer_id, :conversation_id, ids.id, 'reply:' || ids.id, 'reply', :channel,
               :address, r.body, CAST('{{}}' AS JSON), :outbox_status, :not_before, 0, :sent_at, :now
        FROM ids JOIN replies r USING (ord)
    )""" if replies else ", ids AS (SELECT NULL::bigint AS id, 0 AS ord WHERE false)"
    return text(
        f"""
    WITH marked AS (
        UPDATE message SET status = 'handled', handled_at = :now, intent = :intent, confidence = :confidence,
                           parse = CAST(:parse AS JSON)
        WHERE id = :message_id AND status = 'received'
        RETURNING id
    )
    , touched AS (
        UPDATE conversation SET last_message_at = :last_message_at, last_channel = :channel,
                                last_handled_id = :message_id, updated_at = :now,
                                state = COALESCE(CAST(:state AS JSON), conversation.state)
        WHERE id = :conversation_id AND EXISTS (SELECT 1 FROM marked)
    ){reply_ctes}
    SELECT (SELECT count(*) FROM marked) AS marked, ARRAY(SELECT id FROM ids ORDER BY ord) AS ids
    """
    )


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
        self._record_statements: dict[int, TextClause] = {}  # by number of replies

    def handle_inbound(self, inbound: InboundMessage) -> list[Reply]:
        """Stores the message, runs its bot turn once, and returns the replies to it."""
        with metrics.observe_pipeline(inbound.channel):
            try:
                return self._handle(inbound)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                # The pool does not ping connections (see bot.db); one the server dropped fails
                # here, once. Running the whole message again is safe: the store is idempotent
                # and a turn that did not commit left its message unhandled.
                log.warning("database connection lost; running the message again on a new one")
                return self._handle(inbound)

    def _handle(self, inbound: InboundMessage) -> list[Reply]:
        # One pooled connection serves the store, the turn and the answer.
        with self.db.engine.connect() as conn:
            message_id, conversation_id, status = self.store(inbound, conn)
            if status == MessageStatus.received and conversation_id is not None:
                replies = self._drain(conn, conversation_id, upto=message_id)
                if replies is not None:
                    return replies
            return self.replies_to(message_id, conn)

    # -- step 1: store -------------------------------------------------------------------------

    def store(self, inbound: InboundMessage, conn: Connection | None = None) -> tuple[int, int | None, MessageStatus]:
        """Commits the message (or finds the stored one of a retry) and its conversation."""
        if conn is None:
            with self.db.engine.connect() as own:
                return self._store_or_find(own, inbound)
        return self._store_or_find(conn, inbound)

    def _store_or_find(self, conn: Connection, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus]:
        try:
            if self.db.is_postgres and (stored := self._store_at_once(conn, inbound)) is not None:
                return stored
            with self.db.transaction_on(conn) as session:
                return self._store(session, inbound)
        except IntegrityError:
            # A concurrent retry of the same channel message won the insert: use its row.
            with self.db.transaction_on(conn) as session:
                found = self._find_stored(session, inbound)
                if found is None:
                    raise
                return found
        except Exception as error:
            if _disconnected(error):
                raise  # not the message's fault: handle_inbound runs it again
            # Finding the owner failed: keep the message anyway, as a dead letter for staff.
            log.exception("could not file inbound message", extra={"dealer_id": inbound.dealer_id})
            with self.db.transaction_on(conn) as session:
                found = self._find_stored(session, inbound)
                if found is not None:
                    return found
                row = self._message_row(inbound, conversation_id=None, status=MessageStatus.dead, now=self.clock())
                row["error"] = "could not find the owner or conversation"
                message_id = session.execute(insert(Message).returning(Message.id), [row]).scalar_one()
                return message_id, None, MessageStatus.dead

    def _store_at_once(self, conn: Connection, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus] | None:
        params = {
            "p_dealer_id": inbound.dealer_id,
            "p_channel": inbound.channel,
            "p_address": inbound.address,
            "p_now": self.clock(),
            "m_channel_message_id": inbound.channel_message_id,
            "m_kind": inbound.kind,
            "m_text": inbound.text,
            "m_payload": inbound.payload,
        }
        conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with conn.begin():  # no BEGIN is sent in autocommit; this only closes SQLAlchemy's books
                row = conn.execute(STORE_AT_ONCE, params).first()
        finally:
            conn.execution_options(isolation_level=self.db.engine.dialect.default_isolation_level)
        return (row.id, row.conversation_id, MessageStatus.received) if row is not None else None

    def _store(self, session: Session, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus]:
        # No look-up first: a retry fails the unique constraint on insert and is answered from
        # the stored row (see store()); the common path pays for no extra query. Statements go
        # straight to the connection: the ORM's bookkeeping cost more than the database did.
        now = self.clock()
        customer_id, conversation_id = self._identity(session, inbound, now)
        if conversation_id is None:
            conversation_id = self._open_conversation(session, inbound, customer_id)
        message_id = session.connection().execute(
            INSERT_MESSAGE,
            [self._message_row(inbound, conversation_id=conversation_id, status=MessageStatus.received, now=now)],
        ).scalar_one()
        return message_id, conversation_id, MessageStatus.received

    def _find_stored(self, session: Session, inbound: InboundMessage) -> tuple[int, int | None, MessageStatus] | None:
        if inbound.channel_message_id is None:
            return None
        row = session.connection().execute(
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

    def _identity(self, session: Session, inbound: InboundMessage, now: datetime) -> tuple[int, int | None]:
        """Touches the owner's identity on this channel, creating it (and the customer) the first
        time; returns the customer and their open conversation, if they have one."""
        conn = session.connection()
        params = {"p_dealer_id": inbound.dealer_id, "p_channel": inbound.channel, "p_address": inbound.address}
        row = conn.execute(FIND_IDENTITY, params).first()
        if row is not None:
            conn.execute(TOUCH_IDENTITY, {"p_identity_id": row[0], "last_inbound_at": now})
            return row[1], row[2]
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
        row = conn.execute(FIND_IDENTITY, params).one()
        conn.execute(TOUCH_IDENTITY, {"p_identity_id": row[0], "last_inbound_at": now})
        return row[1], row[2]

    def _open_conversation(self, session: Session, inbound: InboundMessage, customer_id: int) -> int:
        """Finds or opens the customer's conversation under the customer's row lock.

        One history across channels: a WeChat and an SMS message arriving together must not open
        two conversations, so the decision is taken again under the lock, in a new statement
        (a statement that waited for a lock still sees the snapshot it started with).

        The lock is NO KEY UPDATE, not UPDATE: a running turn's inserts check their foreign key
        to the customer with a KEY SHARE lock, which FOR UPDATE would block.
        """
        conn = session.connection()
        conn.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True)).one()
        conversation_id = conn.execute(
            select(Conversation.id)
            .where(
                Conversation.dealer_id == inbound.dealer_id,
                Conversation.customer_id == customer_id,
                Conversation.status != ConversationStatus.closed,
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        ).scalar()
        if conversation_id is not None:
            return conversation_id
        conversation = Conversation(dealer_id=inbound.dealer_id, customer_id=customer_id, state={})
        session.add(conversation)
        session.flush()
        return conversation.id

    # -- step 2: one turn at a time, in order --------------------------------------------------

    def _drain(self, conn: Connection, conversation_id: int, *, upto: int) -> list[Reply] | None:
        """Handles the conversation's unhandled messages in order, up to and including `upto`.

        Returns the replies to `upto` when this call ran its turn, None when another did.
        """
        while True:
            try:
                outcome = self._step(conn, conversation_id, upto, self._turn)
            except AlreadyHandled:
                continue  # read from a snapshot older than the lock: read again
            except Exception as error:
                if _disconnected(error):
                    raise  # the turn did not commit; its message stays unhandled for the rerun
                log.exception("bot turn failed", extra={"conversation_id": conversation_id})
                try:
                    outcome = self._step(conn, conversation_id, upto, self._failed_turn)
                except AlreadyHandled:
                    continue
            if outcome is None:
                return None
            message_id, replies = outcome
            if message_id == upto:
                return replies

    def _step(
        self,
        conn: Connection,
        conversation_id: int,
        upto: int,
        run: Callable[[Session, ConversationRow, NextMessage], list[Reply]],
    ) -> tuple[int, list[Reply]] | None:
        """One turn in its own transaction: lock, take the oldest unhandled message, `run` it."""
        with self.db.transaction_on(conn) as session:
            conversation, message = self._lock_next(session, conversation_id)
            if message is None or message.id > upto:
                return None
            return message.id, run(session, conversation, message)

    def _lock_next(self, session: Session, conversation_id: int) -> tuple[ConversationRow, NextMessage | None]:
        """Locks the conversation and reads its oldest unhandled message and owner.

        When the lock is free, one statement takes it and reads everything. When another turn
        holds it, we wait for it first and read in a new statement: under READ COMMITTED a
        statement that waited for a lock still sees the snapshot it started with, so it could
        pick the message the previous holder has just handled. The lock can also come free
        between the snapshot and the lock; then the locked row is the newest version and its
        last_handled_id shows the message is stale. (MARK_HANDLED checks once more.)
        """
        conn = session.connection()
        params = {"conversation_id": conversation_id}
        rows = conn.execute(LOCK_NEXT_IF_FREE, params).all()
        if not rows:
            conn.execute(WAIT_FOR_LOCK, params).one()
            rows = conn.execute(LOCK_NEXT, params).all()
        elif rows[0].message_id is not None and rows[0].message_id <= (rows[0].last_handled_id or 0):
            # the lock came free between our snapshot and our lock: the conversation row is the
            # newest, the message is not. We hold the lock now; a new statement reads afresh.
            rows = conn.execute(LOCK_NEXT, params).all()
        first = rows[0]
        conversation = ConversationRow(first.id, first.dealer_id, first.customer_id, first.status, first.state)
        if first.message_id is None:
            return conversation, None
        return conversation, NextMessage(
            id=first.message_id,
            dealer_id=conversation.dealer_id,
            channel=first.channel,
            address=first.address,
            text=first.text,
            kind=first.kind,
            payload=first.payload or {},
            created_at=first.created_at,
            owner=OwnerView(
                name=first.customer_name,
                language=first.customer_language,
                vehicles=tuple(
                    VehicleInfo(row.vehicle_id, row.plate, row.model, row.last_service_date, row.last_service_mileage)
                    for row in rows
                    if row.vehicle_id is not None
                ),
            ),
        )

    def _turn(self, session: Session, conversation: ConversationRow, message: NextMessage) -> list[Reply]:
        conn = session.connection()
        now = self.clock()
        if conversation.status in conversation_status.HANDED_OFF:
            # A person owns this conversation: the bot stays silent, the console shows the message.
            self._mark_handled(conn, message, now)
            self._touch(conn, conversation, message, None)
            conversation_status.record_event(
                session=session,
                conversation=conversation,
                kind="message",
                actor="owner",
                data={"message_id": message.id},
            )
            return []

        dealer = self.dealers.get(session, message.dealer_id)
        owner = message.owner
        lang = owner.language or dealer.language
        parse = understand(self.nlu, message.text, now=now.astimezone(dealer.zone), lang=lang)
        state = State.from_json(conversation.state)
        outreach = live_outreach(conversation.state, now)
        context = self._context(session, dealer, conversation, message, lang, now, calendar=engine.needs_calendar(state, parse))
        if outreach is not None:
            context = replace(context, outreach=outreach)
        turn = self.respond(state, parse, context)
        if turn.effects:
            # Effects are rare and varied: they get the ORM, in this transaction. A booking whose
            # slot was taken meanwhile answers with the flow's alternative turn instead.
            scope = effects.Scope(conversation.dealer_id, conversation.customer_id, conversation.id, message.id, now)
            instead = effects.apply(session, scope, turn.effects)
            if instead is not None:
                turn = instead
                effects.apply(session, scope, turn.effects)
        state_json = turn.state.to_json()
        if outreach is not None and turn.keeps_outreach:
            state_json[OUTREACH] = outreach  # kept until answered or stale
        if self.db.is_postgres:
            replies = self._record_turn(conn, conversation, message, now, parse, turn, state_json)
        else:
            self._mark_handled(conn, message, now, parse)
            self._touch(conn, conversation, message, state_json)
            replies = self._add_replies(session, conversation, message, turn.replies, now)
        metrics.record_inbound(message.channel, parse.name)
        return replies

    def _record_turn(
        self,
        conn: Connection,
        conversation: ConversationRow,
        message: NextMessage,
        now: datetime,
        parse: Parse,
        turn: Turn,
        state: dict[str, Any],
    ) -> list[Reply]:
        grace = PASSIVE_GRACE.get(message.channel)
        params: dict[str, Any] = {
            "now": now,
            "message_id": message.id,
            "intent": parse.name,
            "confidence": round(parse.confidence, 4),
            "parse": json.dumps(parse.to_rasa(), ensure_ascii=False),
            "conversation_id": conversation.id,
            "dealer_id": conversation.dealer_id,
            "customer_id": conversation.customer_id,
            "last_message_at": message.created_at,
            "channel": message.channel.value,
            "address": message.address,
            "state": None if state == conversation.state else json.dumps(state, ensure_ascii=False),
            # the simulator shows replies from its HTTP answer and history: nothing to send
            "outbox_status": (OutboxStatus.pending if grace else OutboxStatus.sent).value,
            "not_before": now + (grace or timedelta(0)),
            "sent_at": None if grace else now,
        }
        for i, reply in enumerate(turn.replies):
            params[f"text_{i}"] = reply.text
            params[f"payload_{i}"] = json.dumps({"buttons": list(reply.buttons)} if reply.buttons else {}, ensure_ascii=False)
            params[f"body_{i}"] = reply.as_plain_text()
        statement = self._record_statements.get(len(turn.replies))
        if statement is None:
            statement = self._record_statements.setdefault(len(turn.replies), record_turn_sql(len(turn.replies)))
        marked, ids = conn.execute(statement, params).one()
        if marked != 1:
            raise AlreadyHandled(message.id)
        for _ in turn.replies:
            metrics.record_outbound(message.channel)
        return [replace(reply, message_id=message_id) for reply, message_id in zip(turn.replies, ids, strict=True)]

    @staticmethod
    def _mark_handled(conn: Connection, message: NextMessage, now: datetime, parse: Parse | None = None) -> None:
        values: dict[str, Any] = {"status": MessageStatus.handled, "handled_at": now}
        if parse is not None:
            values.update(intent=parse.name, confidence=round(parse.confidence, 4), parse=parse.to_rasa())
        if conn.execute(MARK_HANDLED, {"message_id": message.id, **values}).rowcount != 1:
            raise AlreadyHandled(message.id)

    @staticmethod
    def _touch(conn: Connection, conversation: ConversationRow, message: NextMessage, state: dict[str, Any] | None) -> None:
        values: dict[str, Any] = {
            "last_message_at": message.created_at,
            "last_channel": message.channel,
            "last_handled_id": message.id,
        }
        if state is not None and state != conversation.state:
            values["state"] = state
        conn.execute(TOUCH_CONVERSATION, {"conversation_id": conversation.id, **values})

    def _failed_turn(self, session: Session, conversation: ConversationRow, message: NextMessage) -> list[Reply]:
        """Marks a message whose turn raised as dead and tells the owner politely."""
        conn = session.connection()
        language = message.owner.language
        now = self.clock()
        values = {"status": MessageStatus.dead, "handled_at": now, "error": "bot turn failed"}
        if conn.execute(MARK_HANDLED, {"message_id": message.id, **values}).rowcount != 1:
            raise AlreadyHandled(message.id)
        self._touch(conn, conversation, message, None)
        conversation_status.record_event(
            session=session, conversation=conversation, kind="dead_letter", actor="bot", data={"message_id": message.id}
        )
        reply = Reply(templates.text("error.internal", language))
        return self._add_replies(session, conversation, message, (reply,), now)

    def _context(
        self,
        session: Session,
        dealer: DealerView,
        conversation: ConversationRow,
        message: NextMessage,
        lang: str,
        now: datetime,
        *,
        calendar: bool,
    ) -> Context:
        owner = message.owner
        location = None
        if message.kind == "location" and {"latitude", "longitude"} <= message.payload.keys():
            payload = message.payload
            location = Location(float(payload["latitude"]), float(payload["longitude"]), str(payload.get("label") or ""))
        booked, appointments = calendar_for(session, dealer.id, conversation.customer_id, now) if calendar else ((), ())
        return Context(
            now=now,
            lang=lang,
            dealer_name=dealer.name,
            dealer_phone=dealer.phone,
            timezone=dealer.timezone,
            config=dealer.config,
            customer_name=owner.name or "",
            vehicles=owner.vehicles,
            threshold=self.threshold,
            message_id=message.id,
            booked=booked,
            appointments=appointments,
            location=location,
            dealer_location=dealer.location,
        )

    def _add_replies(
        self, session: Session, conversation: ConversationRow, inbound: NextMessage, replies: tuple[Reply, ...], now: datetime
    ) -> list[Reply]:
        """Stores the replies as outbound messages, each with its outbox row, in this transaction."""
        if not replies:
            return []
        conn = session.connection()
        message_ids = conn.execute(
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
        ).scalars().all()
        grace = PASSIVE_GRACE.get(inbound.channel)
        conn.execute(
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

    def replies_to(self, message_id: int, conn: Connection | None = None) -> list[Reply]:
        """Returns the bot's stored replies to one inbound message, in order."""
        query = (
            select(Message.id, Message.text, Message.payload)
            .where(Message.reply_to_id == message_id, Message.sender == "bot")
            .order_by(Message.id)
        )
        if conn is None:
            with self.db.engine.connect() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [Reply(text=row.text, buttons=tuple((row.payload or {}).get("buttons", ())), message_id=row.id) for row in rows]


def handle_without_turn(
    session: Session, conversation_id: int | None, message_id: int, now: datetime, *, intent: str | None = None
) -> tuple[Any | None, bool]:
    """Marks a stored message that no bot turn reads (a channel event, a carrier keyword) as
    handled, under the conversation lock a turn takes, so a turn in progress cannot pick it up too.

    Returns the locked conversation (id, dealer_id, customer_id, status; None without one) and
    whether this call marked it: False when a turn handled it meanwhile.
    """
    conversation = None
    if conversation_id is not None:
        conversation = session.execute(
            select(Conversation.id, Conversation.dealer_id, Conversation.customer_id, Conversation.status)
            .where(Conversation.id == conversation_id)
            .with_for_update(key_share=True)
        ).one()
    values: dict[str, Any] = {"status": MessageStatus.handled, "handled_at": now}
    if intent is not None:
        values["intent"] = intent
    marked = session.execute(MARK_HANDLED, {"message_id": message_id, **values}).rowcount
    return conversation, marked == 1


OUTREACH = "outreach"  # the state key bot/outreach.py writes when a reminder or survey goes out
OUTREACH_DAYS = 7  # an answer to a reminder comes within days, or it is a new conversation


def live_outreach(state: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    """The outreach in the conversation state, if it is recent enough to be answered."""
    outreach = (state or {}).get(OUTREACH)
    if not isinstance(outreach, dict):
        return None
    try:
        sent_at = datetime.fromisoformat(str(outreach.get("sent_at")))
    except ValueError:
        return None
    if sent_at.tzinfo is None or now - sent_at > timedelta(days=OUTREACH_DAYS):
        return None
    return outreach


@dataclass(frozen=True, slots=True)
class OwnerView:
    name: str | None
    language: str | None
    vehicles: tuple[VehicleInfo, ...]


def _disconnected(error: BaseException) -> bool:
    return isinstance(error, DBAPIError) and error.connection_invalidated


class AlreadyHandled(Exception):
    """The message a turn picked was handled by another turn meanwhile (see _lock_next)."""


CALENDAR_DAYS = 30


def calendar_for(
    session: Session, dealer_id: int, customer_id: int, now: datetime
) -> tuple[tuple[Booked, ...], tuple[AppointmentInfo, ...]]:
    """The workshop's taken slots for the next weeks, and the owner's own upcoming appointments."""
    rows = session.execute(
        select(
            Appointment.id,
            Appointment.customer_id,
            Appointment.reference,
            Appointment.service_type,
            Appointment.starts_at,
            Appointment.ends_at,
            Appointment.status,
            Vehicle.plate,
        )
        .outerjoin(Vehicle, Vehicle.id == Appointment.vehicle_id)
        .where(
            Appointment.dealer_id == dealer_id,
            Appointment.status.in_(("booked", "confirmed")),
            Appointment.ends_at > now,
            Appointment.starts_at < now + timedelta(days=CALENDAR_DAYS),
        )
        .order_by(Appointment.starts_at)
    ).all()
    booked = tuple(Booked(row.starts_at, row.ends_at, row.id) for row in rows)
    mine = tuple(
        AppointmentInfo(row.id, row.reference, row.service_type, row.starts_at, row.ends_at, row.status, row.plate or "")
        for row in rows
        if row.customer_id == customer_id
    )
    return booked, mine


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """The conversation columns a turn reads, selected under its row lock."""

    id: int
    dealer_id: int
    customer_id: int
    status: ConversationStatus
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NextMessage:
    """The inbound message a turn handles."""

    id: int
    dealer_id: int
    channel: Channel
    address: str
    text: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    owner: OwnerView


@dataclass(frozen=True, slots=True)
class DealerView:
    id: int
    name: str
    phone: str
    timezone: str
    zone: ZoneInfo
    language: str
    config: DealerConfig
    location: tuple[float, float] | None = None


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
            zone=ZoneInfo(dealer.timezone),
            language=dealer.language,
            config=DealerConfig.model_validate(dealer.config or {}),
            location=(dealer.latitude, dealer.longitude) if dealer.latitude is not None and dealer.longitude is not None else None,
        )
        self._views[dealer_id] = (time.monotonic(), view)
        return view
