"""The message road's invariants: store first, retries are no-ops, one turn at a time, in order."""
from __future__ import annotations

import threading
from datetime import UTC, datetime
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from bot.db import Database
from bot.messages import InboundMessage
from bot.models import (
    Channel,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    Outbox,
)
from bot.pipeline import Pipeline
from nlu import Parse
from tests.factories import make_customer, make_dealer


class RecordingNLU:
    """Wraps the real NLU: counts calls, records order and how many parses overlap."""

    def __init__(self, inner, delay: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.delay = delay
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def parse(self, text: str, lang: str = "zh") -> Parse:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append(text)
        try:
            time.sleep(self.delay)
            return self.inner.parse(text, lang)
        finally:
            with self._lock:
                self.in_flight -= 1


class BrokenNLU:
    def parse(self, text: str, lang: str = "zh") -> Parse:
        raise RuntimeError("model file corrupt")


@pytest.fixture
def owner(db: Database):  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        dealer = make_dealer(session)
        customer = make_customer(session, dealer)
    return dealer.id, customer.id


def message(owner: tuple[int, int], text: str, message_id: str | None = None) -> InboundMessage:
    dealer_id, customer_id = owner
    return InboundMessage(
        dealer_id=dealer_id,
        channel=Channel.simulator,
        address=f"sim:{customer_id}",
        customer_id=customer_id,
        text=text,
        channel_message_id=message_id or uuid.uuid4().hex,
    )


def count(db: Database, *where) -> int:  # type: ignore[no-untyped-def]
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message).where(*where)) or 0


def test_greeting_is_stored_understood_and_answered(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    replies = Pipeline(db=db, nlu=nlu).handle_inbound(message(owner, "你好"))

    assert len(replies) == 1 and "王先生您好" in replies[0].text
    with db.sessions() as session:
        inbound = session.scalars(select(Message).where(Message.direction == Direction.inbound)).one()
        assert inbound.status == MessageStatus.handled
        assert inbound.intent == "greet" and inbound.parse["intent"]["name"] == "greet"
        outbox = session.scalars(select(Outbox)).one()
        assert outbox.body == replies[0].text and outbox.kind == "reply"


def test_same_message_id_three_times_is_one_message_one_turn_same_reply(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingNLU(nlu)
    pipeline = Pipeline(db=db, nlu=recording)
    inbound = message(owner, "你好", message_id="wx-msg-1")

    answers = [pipeline.handle_inbound(inbound) for _ in range(3)]

    assert count(db, Message.direction == Direction.inbound) == 1
    assert recording.calls == ["你好"]
    assert count(db, Message.direction == Direction.outbound) == len(answers[0]) == 1
    assert answers[0] == answers[1] == answers[2]


def test_concurrent_retries_of_one_message_make_one_turn(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingNLU(nlu, delay=0.05)
    pipeline = Pipeline(db=db, nlu=recording)
    inbound = message(owner, "你好", message_id="wx-msg-race")

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda _: pipeline.handle_inbound(inbound), range(3)))

    assert recording.calls == ["你好"]
    assert count(db, Message.direction == Direction.inbound) == 1
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 1


def test_fifty_concurrent_messages_are_all_stored_and_handled_one_at_a_time_in_order(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    recording = RecordingNLU(nlu, delay=0.002)
    pipeline = Pipeline(db=db, nlu=recording)
    texts = [f"第{i}条 你好" for i in range(50)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda t: pipeline.handle_inbound(message(owner, t)), texts))

    assert all(len(replies) == 1 for replies in results)
    with db.sessions() as session:
        stored = session.scalars(
            select(Message).where(Message.direction == Direction.inbound).order_by(Message.id)
        ).all()
        replies = session.scalars(
            select(Message).where(Message.direction == Direction.outbound).order_by(Message.id)
        ).all()
    assert len(stored) == 50 and {m.text for m in stored} == set(texts)
    assert all(m.status == MessageStatus.handled for m in stored)
    assert len({m.conversation_id for m in stored}) == 1
    assert recording.max_in_flight == 1, "two turns of one conversation overlapped"
    arrival_order = [m.text for m in stored]
    assert recording.calls == arrival_order, "turns ran out of arrival order"
    assert [r.reply_to_id for r in replies] == [m.id for m in stored]


def test_handed_off_conversation_gets_no_bot_reply(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(db=db, nlu=nlu)

    handoff = pipeline.handle_inbound(message(owner, "转人工"))
    silent = pipeline.handle_inbound(message(owner, "你好，有人吗"))

    assert handoff, "the hand-off itself is confirmed to the owner"
    assert silent == []
    with db.sessions() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.status == ConversationStatus.waiting_staff
        kinds = session.scalars(select(ConversationEvent.kind).order_by(ConversationEvent.id)).all()
        assert kinds == ["status", "message"]
    assert count(db, Message.direction == Direction.inbound, Message.status == MessageStatus.handled) == 2


def test_message_is_stored_even_when_understanding_fails(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    replies = Pipeline(db=db, nlu=BrokenNLU()).handle_inbound(message(owner, "明天保养"))

    assert len(replies) == 1 and "工作人员" in replies[0].text
    with db.sessions() as session:
        stored = session.scalars(select(Message).where(Message.direction == Direction.inbound)).one()
    assert stored.status == MessageStatus.dead and stored.text == "明天保养"


def test_first_message_from_unknown_address_creates_customer_and_conversation(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    dealer_id, _ = owner
    inbound = InboundMessage(dealer_id=dealer_id, channel=Channel.sms, address="+8613912345678", text="你好", channel_message_id="SM1")

    replies = Pipeline(db=db, nlu=nlu).handle_inbound(inbound)

    assert replies and "您好" in replies[0].text
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 1


def test_two_misunderstandings_offer_a_person_and_yes_hands_off(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(db=db, nlu=nlu)

    first = pipeline.handle_inbound(message(owner, "asdkjh qwe zzz"))
    second = pipeline.handle_inbound(message(owner, "xqzv plmk"))
    third = pipeline.handle_inbound(message(owner, "好的"))

    assert "没太明白" in first[0].text
    assert "人工客服" in second[0].text and second[0].buttons
    assert "转接人工客服" in third[0].text
    with db.sessions() as session:
        assert session.scalars(select(Conversation.status)).one() == ConversationStatus.waiting_staff


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # an SQLite file has no server
def test_a_connection_the_server_dropped_costs_no_message(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    own = Database(db.url, pool_size=1)
    try:
        pipeline = Pipeline(db=own, nlu=nlu)
        pipeline.handle_inbound(message(owner, "你好"))  # leaves one pooled connection
        with own.engine.connect() as pooled:
            pid = pooled.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as admin:  # as a database restart or a proxy's idle timeout would
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        replies = pipeline.handle_inbound(message(owner, "几点关门", message_id="after-restart"))

        assert replies, "the message was run again on a new connection and answered"
        assert count(db, Message.channel_message_id == "after-restart") == 1
        assert count(db, Message.status == MessageStatus.dead) == 0
    finally:
        own.dispose()


def test_stored_parse_carries_entities_resolved_in_the_dealers_timezone(db: Database, nlu, owner) -> None:  # type: ignore[no-untyped-def]
    # 23:30 UTC on Sunday is already Monday 07:30 in Guangzhou: 明天 is Tuesday there
    sunday_night_utc = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    pipeline = Pipeline(db=db, nlu=nlu, clock=lambda: sunday_night_utc)

    pipeline.handle_inbound(message(owner, "明天下午三点能做个小保养吗 粤B12345"))

    with db.sessions() as session:
        stored = session.scalars(select(Message).where(Message.direction == Direction.inbound)).one()
    entities = {entity["entity"]: entity["value"] for entity in stored.parse["entities"]}
    assert stored.intent == "book_service"
    assert entities["plate"] == "粤B12345"
    assert entities["time"]["date"] == "2026-11-24" and entities["time"]["time"] == "15:00"
    assert entities["service"] == "minor_service"


def test_each_owner_is_answered_in_their_own_conversation(db: Database, nlu) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        dealer = make_dealer(session)
        first, second = make_customer(session, dealer, name="甲"), make_customer(session, dealer, name="乙", phone="+8613900139000", plate="粤A8K821")
        owners = [(dealer.id, first.id), (dealer.id, second.id)]
    pipeline = Pipeline(db=db, nlu=nlu)

    for text in ("你好", "几点关门", "谢谢"):
        for owner in owners:
            pipeline.handle_inbound(message(owner, text))

    with db.sessions() as session:
        conversations = session.scalars(select(Conversation).order_by(Conversation.id)).all()
        assert [c.customer_id for c in conversations] == [first.id, second.id]
        for conversation in conversations:
            texts = session.scalars(
                select(Message.text).where(Message.conversation_id == conversation.id, Message.direction == Direction.inbound)
            ).all()
            assert texts == ["你好", "几点关门", "谢谢"]
