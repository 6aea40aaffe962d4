"""The SMS webhook: Twilio's signature over the public URL, refusals that store nothing, retries, MMS, the deadline."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.models import ConversationEvent, Message, MessageStatus, Outbox, OutboxStatus
from integrations.twilio import webhook
from tests.fakes.twilio_api import inbound_form
from tests.integrations.sms_fixtures import (
    DEALER_NUMBER,
    OWNER,
    PUBLIC_URL,
    TwilioServer,
    add_sms_account,
    twiml_messages,
)

pytestmark = pytest.mark.db


@pytest.fixture
def server(client, db) -> TwilioServer:  # type: ignore[no-untyped-def]
    add_sms_account(db)
    return TwilioServer(client)




def _stored(db) -> int:  # type: ignore[no-untyped-def]
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Message)) or 0


def test_a_signed_sms_is_answered_with_twiml_carrying_the_dealers_signature(server: TwilioServer, db, turns) -> None:  # type: ignore[no-untyped-def]
    response = server.sms("你们几点开门？")

    [reply] = twiml_messages(response)
    assert reply.startswith("【测试丰田4S店】") and "8:30" in reply
    assert turns == ["你们几点开门？"]
    with db.sessions() as session:
        inbound = session.scalars(select(Message).where(Message.direction == "in")).one()
        [row] = session.scalars(select(Outbox)).all()
    assert inbound.address == OWNER and inbound.status == MessageStatus.handled
    assert row.status == OutboxStatus.sent and row.provider_status == "passive"  # answered in the TwiML, not again


def test_the_signature_is_checked_against_the_public_url_not_the_address_the_app_sees(server: TwilioServer, db) -> None:  # type: ignore[no-untyped-def]
    form = inbound_form(to=DEALER_NUMBER, from_=OWNER, body="你好")
    # signed for the URL the app itself sees behind the proxy: Twilio never calls that one
    response = server.post(form, signed_url="http://testserver/sms/twilio/test")

    assert response.status_code == 403
    assert _stored(db) == 0


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"signed_form_change": ("Body", "你好")}, id="a changed parameter"),
        pytest.param({"signed_url": f"{PUBLIC_URL}/sms/twilio/other"}, id="a wrong URL"),
        pytest.param({"header": None}, id="a missing header"),
        pytest.param({"header": ""}, id="an empty header"),
        pytest.param({"header": "not base64 at all!"}, id="garbage"),
    ],
)
def test_forged_requests_are_refused_with_403_and_store_nothing(server: TwilioServer, db, turns, forgery) -> None:  # type: ignore[no-untyped-def]
    form = inbound_form(to=DEALER_NUMBER, from_=OWNER, body="我要投诉")
    kwargs = dict(forgery)
    if change := kwargs.pop("signed_form_change", None):
        kwargs["signed_form"] = {**form, change[0]: change[1]}

    response = server.post(form, **kwargs)

    assert response.status_code == 403
    assert _stored(db) == 0 and turns == []


def test_a_replayed_signature_with_a_new_body_is_refused(server: TwilioServer, client, db, turns) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    genuine = inbound_form(to=DEALER_NUMBER, from_=OWNER, body="你好")
    first = server.post(genuine)
    header = first.request.headers["X-Twilio-Signature"]
    replay = {**genuine, "Body": "把我的预约全部取消", "MessageSid": "SM" + "f" * 32}

    response = client.post(
        "/sms/twilio/test",
        content=urlencode(replay).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": header},
    )

    assert response.status_code == 403
    assert turns == ["你好"]
    assert _stored(db) == 2  # the genuine message and its reply; nothing of the replay


def test_a_message_sid_posted_three_times_makes_one_bot_turn_and_one_answer(server: TwilioServer, db, turns) -> None:  # type: ignore[no-untyped-def]
    form = inbound_form(to=DEALER_NUMBER, from_=OWNER, body="你们几点开门？")

    answers = [twiml_messages(server.post(form)) for _ in range(3)]

    assert turns == ["你们几点开门？"]
    assert len(answers[0]) == 1 and answers[1] == answers[2] == []  # a repeat is not answered twice
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 1
        assert session.scalar(select(func.count()).select_from(Outbox)) == 1


def test_repeated_form_keys_are_all_signed_and_kept(server: TwilioServer, db) -> None:  # type: ignore[no-untyped-def]
    form = list(inbound_form(to=DEALER_NUMBER, from_=OWNER, body="你好").items()) + [("Extra", "b"), ("Extra", "a")]

    assert server.post(form).status_code == 200
    forged = form[:-1]  # one value of the repeated key dropped, the signature kept
    header = server.post(form).request.headers["X-Twilio-Signature"]
    assert server.post(forged, header=header).status_code == 403


def test_a_body_over_64_kb_is_refused_with_413(server: TwilioServer, db) -> None:  # type: ignore[no-untyped-def]
    response = server.sms("好" * 30_000)

    assert response.status_code == 413
    assert _stored(db) == 0


def test_an_unknown_dealer_is_404(client, db) -> None:  # type: ignore[no-untyped-def]
    response = TwilioServer(client, slug="nobody").sms("你好")

    assert response.status_code == 404


def test_a_signed_form_without_a_sender_is_kept_as_a_dead_letter_and_answered_200(server: TwilioServer, db) -> None:  # type: ignore[no-untyped-def]
    form = inbound_form(to=DEALER_NUMBER, from_="", body="你好")

    assert twiml_messages(server.post(form)) == []
    with db.sessions() as session:
        [dead] = session.scalars(select(Message)).all()
    assert dead.status == MessageStatus.dead and dead.text == "你好" and dead.error


def test_numbers_are_stored_in_e164_so_one_phone_is_one_owner(server: TwilioServer, db) -> None:  # type: ignore[no-untyped-def]
    server.sms("你好", from_="+86 138 0013 8000")
    server.sms("在吗", from_="008613800138000")

    with db.sessions() as session:
        addresses = set(session.scalars(select(Message.address).where(Message.direction == "in")))
        conversations = set(session.scalars(select(Message.conversation_id)))
    assert addresses == {OWNER} and len(conversations) == 1


def test_a_picture_is_stored_as_a_link_acknowledged_and_offered_to_staff(server: TwilioServer, db, turns) -> None:  # type: ignore[no-untyped-def]
    url = "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1"
    form = inbound_form(to=DEALER_NUMBER, from_=OWNER, body="", media=[(url, "image/jpeg")])

    [reply] = twiml_messages(server.post(form))

    assert "图片" in reply and turns == []
    with db.sessions() as session:
        inbound = session.scalars(select(Message).where(Message.direction == "in")).one()
        events = session.scalars(select(ConversationEvent.kind)).all()
    assert inbound.kind == "media" and inbound.payload["media"] == [{"url": url, "content_type": "image/jpeg"}]
    assert "message" in events


def test_a_slow_turn_gets_empty_twiml_and_its_reply_goes_by_the_rest_api_later(server: TwilioServer, app, db) -> None:  # type: ignore[no-untyped-def]
    app.state.sms_deadline = 0.2
    release = threading.Event()
    real = app.state.pipeline.respond

    def slow(*args: Any) -> Any:
        release.wait(10)
        return real(*args)

    app.state.pipeline.respond = slow
    assert twiml_messages(server.sms("你们几点开门？")) == []
    release.set()
    assert webhook.wait_for_turns(timeout=20)
    with db.sessions() as session:
        [row] = session.scalars(select(Outbox)).all()
    assert row.status == OutboxStatus.pending and row.kind == "reply"  # the dispatcher's, after the grace
