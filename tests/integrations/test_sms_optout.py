"""Opt-out by SMS: STOP / START / HELP in English and Chinese, silence after, nothing sent to an opted-out number."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.messages import InboundMessage
from bot.models import (
    Channel,
    ChannelIdentity,
    Customer,
    Dealer,
    Message,
    Outbox,
    OutboxStatus,
    utcnow,
)
from bot.outbox import Dispatcher
from integrations.twilio import webhook
from integrations.twilio.sender import TwilioSender
from tests.factories import make_customer
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.integrations.sms_fixtures import (
    OWNER,
    PUBLIC_URL,
    TwilioServer,
    add_sms_account,
    twiml_messages,
)

pytestmark = pytest.mark.db


@pytest.fixture
def api() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def dealer_id(db: Database, api: FakeTwilioAPI) -> int:
    return add_sms_account(db, api_base=api.url)


@pytest.fixture
def server(client, dealer_id: int) -> TwilioServer:  # type: ignore[no-untyped-def]
    return TwilioServer(client)




def dispatch(db: Database, *, later: timedelta = timedelta(minutes=1)) -> None:
    """Runs the dispatcher once, a little in the future (past the passive grace)."""
    sender = TwilioSender(db, public_url=PUBLIC_URL, clock=lambda: utcnow() + later)
    Dispatcher(db=db, senders={Channel.sms: sender}, clock=lambda: utcnow() + later).run_once()


def opted_out(db: Database, address: str = OWNER, channel: Channel = Channel.sms) -> bool:
    with db.sessions() as session:
        return bool(
            session.scalar(
                select(ChannelIdentity.opted_out).where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
            )
        )


def queue_reminder(db: Database, dealer_id: int, key: str, address: str = OWNER) -> int:
    with db.transaction() as session:
        row = Outbox(
            dealer_id=dealer_id, dedupe_key=key, kind="reminder:maintenance", channel=Channel.sms, address=address,
            body="您的爱车该做保养了，回复“预约”即可预约。", status=OutboxStatus.pending, not_before=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


def test_the_english_cycle_stop_is_confirmed_once_then_silence_until_start(server: TwilioServer, turns, db) -> None:  # type: ignore[no-untyped-def]
    [confirmation] = twiml_messages(server.sms("STOP"))
    assert "unsubscribed" in confirmation and "START" in confirmation and opted_out(db)

    assert twiml_messages(server.sms("stop")) == []  # a second STOP: no second confirmation
    assert twiml_messages(server.sms("你们几点开门？")) == []  # stored for staff, not answered
    assert turns == []

    [welcome_back] = twiml_messages(server.sms("START"))
    assert "subscribed" in welcome_back and not opted_out(db)
    assert len(twiml_messages(server.sms("你们几点开门？"))) == 1
    assert turns == ["你们几点开门？"]
    with db.sessions() as session:
        texts = session.scalars(select(Message.text).where(Message.direction == "in").order_by(Message.id)).all()
    assert texts == ["STOP", "stop", "你们几点开门？", "START", "你们几点开门？"]  # every message kept


def test_the_chinese_cycle_tuiding_then_dingyue(server: TwilioServer, turns, db) -> None:  # type: ignore[no-untyped-def]
    [confirmation] = twiml_messages(server.sms("退订"))
    assert confirmation.startswith("【测试丰田4S店】您已退订") and "回复“订阅”" in confirmation
    assert twiml_messages(server.sms("TD")) == []

    [back] = twiml_messages(server.sms("订阅"))
    assert "重新订阅" in back and not opted_out(db) and turns == []


@pytest.mark.parametrize(
    "words", ["T", "td", "退订。", "取消订阅", "别再发了", "不要再给我发短信", "UNSUBSCRIBE", "OptOut", "END", "QUIT", "REVOKE", "STOPALL", "CANCEL"]
)
def test_every_stop_word_opts_the_number_out(server: TwilioServer, db, words: str) -> None:  # type: ignore[no-untyped-def]
    [confirmation] = twiml_messages(server.sms(words))

    assert opted_out(db) and confirmation


def test_the_owners_own_words_opt_out_through_the_flow(server: TwilioServer, turns, db) -> None:  # type: ignore[no-untyped-def]
    [confirmation] = twiml_messages(server.sms("以后不要再给我发保养提醒了"))

    assert turns == ["以后不要再给我发保养提醒了"] and opted_out(db)
    assert "关闭消息提醒" in confirmation


@pytest.mark.parametrize(("words", "says"), [("HELP", "020-88886666"), ("帮助", "020-88886666"), ("info", "call us")])
def test_help_gives_the_dealers_name_and_phone_even_when_opted_out(server: TwilioServer, db, words: str, says: str) -> None:  # type: ignore[no-untyped-def]
    server.sms("STOP")

    [answer] = twiml_messages(server.sms(words))

    assert says in answer and "测试丰田4S店" in answer and opted_out(db)


def test_yes_from_a_subscribed_number_answers_the_conversation_not_the_carrier(server: TwilioServer, turns, db) -> None:  # type: ignore[no-untyped-def]
    server.sms("YES")

    assert turns == ["YES"] and not opted_out(db)


def test_a_reminder_queued_before_the_opt_out_is_never_sent(server: TwilioServer, api: FakeTwilioAPI, db, dealer_id: int) -> None:  # type: ignore[no-untyped-def]
    reminder = queue_reminder(db, dealer_id, "reminder:1")
    server.sms("退订")

    dispatch(db)

    assert api.messages == []
    with db.sessions() as session:
        row = session.get_one(Outbox, reminder)
    assert row.status == OutboxStatus.cancelled and row.last_error == "opted_out"


def test_the_sender_checks_the_opt_out_at_the_moment_of_sending(server: TwilioServer, api: FakeTwilioAPI, db, dealer_id: int) -> None:  # type: ignore[no-untyped-def]
    server.sms("STOP")
    # a row that escaped the cancellation (written by another process at that very moment)
    reminder = queue_reminder(db, dealer_id, "reminder:2")

    dispatch(db)

    assert api.messages == []
    with db.sessions() as session:
        assert session.get_one(Outbox, reminder).status == OutboxStatus.cancelled


def test_a_stop_confirmation_left_to_the_dispatcher_still_goes_out(server: TwilioServer, app, api: FakeTwilioAPI, db) -> None:  # type: ignore[no-untyped-def]
    app.state.sms_deadline = 0.000001  # the webhook answers before the confirmation is ready
    twiml_messages(server.sms("STOP"))
    assert webhook.wait_for_turns(timeout=20)

    dispatch(db)

    [sent] = api.messages
    assert "unsubscribed" in sent.body and sent.to == OWNER


def test_a_reminder_after_start_is_sent_with_signature_and_opt_out_line(server: TwilioServer, api: FakeTwilioAPI, db, dealer_id: int) -> None:  # type: ignore[no-untyped-def]
    server.sms("STOP")
    server.sms("START")
    queue_reminder(db, dealer_id, "reminder:3")

    dispatch(db)

    [sent] = api.messages
    assert sent.body.startswith("【测试丰田4S店】您的爱车该做保养了") and sent.body.endswith("\n回T退订")


def test_one_owner_two_channels_share_one_history_but_keep_their_own_opt_out(server: TwilioServer, app, db, dealer_id: int) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        dealer = session.get_one(Dealer, dealer_id)
        customer = make_customer(session, dealer, phone=OWNER)
        session.add(ChannelIdentity(dealer_id=dealer_id, customer_id=customer.id, channel=Channel.sms, address=OWNER))
        session.add(ChannelIdentity(dealer_id=dealer_id, customer_id=customer.id, channel=Channel.wechat, address="oOPENID1"))
    app.state.pipeline.handle_inbound(InboundMessage(dealer_id=dealer_id, channel=Channel.wechat, address="oOPENID1", text="你好", channel_message_id="w1"))

    server.sms("退订")

    with db.sessions() as session:
        conversations = set(session.scalars(select(Message.conversation_id)))
        owners = session.scalars(select(Customer.id)).all()
    assert len(conversations) == 1 and owners == [customer.id]
    assert opted_out(db, OWNER, Channel.sms) and not opted_out(db, "oOPENID1", Channel.wechat)


def test_unsubscribed_at_twilio_21610_opts_the_number_out(api: FakeTwilioAPI, db, dealer_id: int, server: TwilioServer) -> None:  # type: ignore[no-untyped-def]
    server.sms("你好")  # the owner exists, subscribed as far as we know
    api.unsubscribed.add(OWNER)
    first = queue_reminder(db, dealer_id, "reminder:4")
    second = queue_reminder(db, dealer_id, "reminder:5")

    dispatch(db)

    assert api.messages == [] and opted_out(db)
    assert len(api.message_posts()) == 1  # the second row was not even tried
    with db.sessions() as session:
        assert session.get_one(Outbox, first).status == session.get_one(Outbox, second).status == OutboxStatus.cancelled
