"""A sent reminder or survey is remembered in the owner's conversation, so their answer finds it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import (
    Channel,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Survey,
    Vehicle,
)
from bot.outbox import Dispatcher
from bot.outreach import record
from bot.pipeline import OUTREACH, live_outreach
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.scheduler.test_dispatch_ladder import (  # noqa: F401  (fixtures)
    BODY,
    DATA,
    NOW,
    OPENID,
    PHONE,
    Clock,
    add_owner,
    clock,
    dealer_id,
    dispatcher,
    owner_wrote,
    plan,
    row,
    twilio,
    wechat,
)

pytestmark = pytest.mark.db


def conversations(db: Database, customer_id: int) -> list[Conversation]:
    with db.sessions() as session:
        return list(session.scalars(select(Conversation).where(Conversation.customer_id == customer_id).order_by(Conversation.id)))


def messages(db: Database, conversation_id: int) -> list[Message]:
    with db.sessions() as session:
        return list(session.scalars(select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)))


def open_conversation(db: Database, dealer_id: int, customer_id: int, *, state: dict, status: ConversationStatus) -> int:  # noqa: F811
    with db.transaction() as session:
        conversation = Conversation(dealer_id=dealer_id, customer_id=customer_id, state=state, status=status, last_channel=Channel.wechat)
        session.add(conversation)
        session.flush()
        return conversation.id


def test_a_sent_reminder_opens_a_conversation_with_the_message_and_what_it_was_about(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    outbox_id = plan(db, dealer_id, owner)

    dispatcher.run_once()

    [conversation] = conversations(db, owner)
    assert conversation.status == ConversationStatus.bot and conversation.last_channel == Channel.sms
    [message] = messages(db, conversation.id)
    assert (message.direction, message.status, message.sender) == (Direction.outbound, MessageStatus.outgoing, "scheduler")
    assert (message.channel, message.address, message.text, message.created_at) == (Channel.sms, PHONE, BODY, NOW)
    assert conversation.state[OUTREACH] == {
        **DATA, "kind": "reminder:maintenance", "outbox_id": outbox_id, "sent_at": NOW.isoformat(),
    }
    sent = row(db, outbox_id)
    assert (sent.conversation_id, sent.message_id) == (conversation.id, message.id)
    assert live_outreach(conversation.state, NOW + timedelta(days=1)) == conversation.state[OUTREACH]


def test_the_outreach_joins_the_owners_open_conversation_and_keeps_its_state(
    db: Database, wechat, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=1))
    open_conversation(db, dealer_id, owner, state={}, status=ConversationStatus.closed)
    current = open_conversation(
        db, dealer_id, owner, state={"flow": "booking", "slots": {"plate": "粤B12345"}, OUTREACH: {"kind": "survey"}},
        status=ConversationStatus.bot,
    )
    plan(db, dealer_id, owner)

    dispatcher.run_once()

    closed, conversation = conversations(db, owner)
    assert conversation.id == current and messages(db, closed.id) == []
    assert conversation.state["flow"] == "booking" and conversation.state["slots"] == {"plate": "粤B12345"}
    assert conversation.state[OUTREACH]["kind"] == "reminder:maintenance", "the newer outreach replaces the older"
    assert conversation.last_channel == Channel.wechat, "an open conversation's reply channel stays the owner's"
    [message] = messages(db, current)
    assert message.channel == Channel.wechat and message.address == OPENID


def test_staff_handling_the_owner_see_the_reminder_go_out(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    conversation_id = open_conversation(db, dealer_id, owner, state={}, status=ConversationStatus.staff)
    plan(db, dealer_id, owner)

    dispatcher.run_once()

    with db.sessions() as session:
        [event] = session.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id == conversation_id))
    assert (event.kind, event.actor) == ("message", "scheduler")


def test_a_sent_survey_is_marked_sent_and_remembered_with_its_scale(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher  # noqa: F811
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    with db.transaction() as session:
        vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.customer_id == owner))
        record_ = ServiceRecord(dealer_id=dealer_id, vehicle_id=vehicle_id, customer_id=owner, order_no="RO1", service_type="minor_service",
                                opened_on=NOW.date(), closed_at=NOW - timedelta(days=1))
        session.add(record_)
        session.flush()
        survey = Survey(dealer_id=dealer_id, customer_id=owner, service_record_id=record_.id, kind="nps")
        session.add(survey)
        session.flush()
        survey_id = survey.id
    plan(db, dealer_id, owner, kind="survey", key=f"survey:{survey_id}",
         data={"rule": "survey", "lang": "zh", "survey_id": survey_id, "scale": "nps"})

    dispatcher.run_once()

    [conversation] = conversations(db, owner)
    assert conversation.state[OUTREACH]["survey_id"] == survey_id and conversation.state[OUTREACH]["scale"] == "nps"
    with db.sessions() as session:
        assert session.get_one(Survey, survey_id).sent_at == NOW


def test_rows_that_are_not_care_leave_no_outreach(db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher) -> None:  # noqa: F811
    owner = add_owner(db, dealer_id, openid=None)
    with db.transaction() as session:
        session.add(Outbox(dealer_id=dealer_id, customer_id=owner, dedupe_key="staff:1", kind="staff_reply", channel=Channel.sms,
                           address=PHONE, body="您好", not_before=NOW))

    dispatcher.run_once()

    assert len(twilio.messages) == 1 and conversations(db, owner) == []


def test_record_merges_into_the_state_under_the_callers_transaction(db: Database, dealer_id: int) -> None:  # noqa: F811
    owner = add_owner(db, dealer_id, openid=None)
    conversation_id = open_conversation(db, dealer_id, owner, state={"misses": 1}, status=ConversationStatus.waiting_staff)
    outbox_id = plan(db, dealer_id, owner, status=OutboxStatus.sent, sent_at=NOW)

    with db.transaction() as session:
        message = record(session, session.get_one(Outbox, outbox_id), Channel.sms, PHONE, NOW)

    [conversation] = conversations(db, owner)
    assert conversation.id == conversation_id and message.conversation_id == conversation_id
    assert conversation.state["misses"] == 1 and conversation.state[OUTREACH]["outbox_id"] == outbox_id
