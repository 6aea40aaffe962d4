"""WeChat account binding: scene QR codes and phone + SMS code, through the real webhook."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.models import (
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationEvent,
    Customer,
    Dealer,
    Message,
    Outbox,
    OutboxStatus,
)
from integrations.wechat import binding, webhook
from integrations.wechat.texts import TEXTS
from tests.factories import make_customer, make_dealer
from tests.integrations.wechat_fixtures import (
    OPENID,
    WeChatServer,
    add_account,
    event_xml,
    text_xml,
)

pytestmark = pytest.mark.db

SECRET = "test-secret-0123456789"  # the settings fixture's secret_key
PHONE = "+8613800138000"


@pytest.fixture(autouse=True)
def _no_turn_outlives_its_test() -> Any:
    yield
    assert webhook.wait_for_turns(timeout=30)


@pytest.fixture
def setup(client, db):  # type: ignore[no-untyped-def]
    """A dealer with a WeChat account and one owner, 王先生 (+8613800138000)."""
    dealer_id = add_account(db)
    with db.transaction() as session:
        customer = make_customer(session, session.get_one(Dealer, dealer_id), name="王先生", phone=PHONE)
        customer_id = customer.id
    return WeChatServer(client), dealer_id, customer_id


class Chat:
    """Sends texts with fresh MsgIds and reads the passive replies."""

    def __init__(self, server: WeChatServer) -> None:
        self.server = server
        self.msg_id = 900_000

    def say(self, text: str) -> str:
        self.msg_id += 1
        response = self.server.post(text_xml(text, msg_id=self.msg_id))
        assert response.status_code == 200
        return self.server.reply_text(response)


def _identity(db) -> ChannelIdentity | None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.channel == Channel.wechat, ChannelIdentity.address == OPENID)
        ).one_or_none()


def _customer(db, customer_id: int) -> Customer | None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.get(Customer, customer_id)


def _codes(db) -> list[Outbox]:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "verification_code").order_by(Outbox.id)))


def _code_of(row: Outbox) -> str:
    match = re.fullmatch(r"【测试丰田4S店】您的绑定验证码是(\d{6})，10分钟内有效。", row.body)
    assert match, row.body
    return match.group(1)


def _state(db, customer_id: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.scalars(
            select(Conversation.state).where(Conversation.customer_id == customer_id).order_by(Conversation.id.desc())
        ).first() or {}


def _assert_bound(db, customer_id: int) -> None:  # type: ignore[no-untyped-def]
    identity = _identity(db)
    assert identity is not None and identity.customer_id == customer_id and identity.opted_out is False
    customer = _customer(db, customer_id)
    assert customer is not None and customer.preferred_channel == Channel.wechat


CONFIRMED = TEXTS["bind_confirmed"]["zh"].format(name="王先生")


# -- scenes --------------------------------------------------------------------------------------


def test_scene_round_trip_and_tampering() -> None:
    scene = binding.scene_for(42, SECRET, order="RO-2024_0001")
    assert re.fullmatch(r"b\.42\.RO-2024_0001\.[0-9a-z]{1,4}\.[0-9a-f]{16}", scene) and len(scene) <= 64
    assert binding.verify_scene(scene, SECRET) == (42, "RO-2024_0001")
    plain = binding.scene_for(42, SECRET)
    assert plain.startswith("b.42..") and binding.verify_scene(plain, SECRET) == (42, None)

    day, mac = scene.rsplit(".", 2)[1:]
    assert binding.verify_scene(f"b.43.RO-2024_0001.{day}.{mac}", SECRET) is None  # another customer
    assert binding.verify_scene(f"b.42.RO-2024_0002.{day}.{mac}", SECRET) is None  # another order
    assert binding.verify_scene(scene[:-1] + ("0" if scene[-1] != "0" else "1"), SECRET) is None
    assert binding.verify_scene(scene, "another-secret-0123456789") is None
    assert binding.verify_scene("b.42..", SECRET) is None
    assert binding.verify_scene(f"b.42.RO-2024_0001.{mac}", SECRET) is None  # the old, dayless form
    assert binding.verify_scene("showroom42", SECRET) is None
    assert binding.verify_scene(scene + "x" * 64, SECRET) is None
    long_order = binding.scene_for(10**17, SECRET, order="A" * 22)
    assert len(long_order) <= 64 and binding.verify_scene(long_order, SECRET) == (10**17, "A" * 22)
    with pytest.raises(ValueError):
        binding.scene_for(10**17, SECRET, order="A" * 23)  # over WeChat's 64 characters
    with pytest.raises(ValueError):
        binding.scene_for(1, SECRET, order="has.dot")
    with pytest.raises(ValueError):
        binding.scene_for(0, SECRET)


def test_a_scene_expires_after_30_days() -> None:
    issued = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    scene = binding.scene_for(42, SECRET, order="RO1", now=issued)

    assert binding.verify_scene(scene, SECRET, now=issued) == (42, "RO1")
    assert binding.verify_scene(scene, SECRET, now=issued + timedelta(days=30)) == (42, "RO1")
    assert binding.verify_scene(scene, SECRET, now=issued + timedelta(days=31)) is None
    assert binding.verify_scene(scene, SECRET, now=issued + timedelta(days=8), max_age_days=7) is None
    assert binding.verify_scene(scene, SECRET, now=issued - timedelta(days=5)) is None  # issued in the future
    # the day is under the MAC: moving it forward (to make an old scene young) breaks the MAC
    body, day, mac = scene.rsplit(".", 2)
    younger = f"{body}.{_base36(int(day, 36) + 10)}.{mac}"
    assert binding.verify_scene(younger, SECRET, now=issued + timedelta(days=10)) is None
    assert binding.scene_for(42, SECRET, order="RO1", now=datetime(2025, 3, 1, 23, 59, tzinfo=UTC)) == scene


def test_subscribe_with_a_bind_scene_binds_a_new_openid(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    scene = binding.scene_for(customer_id, SECRET, order="RO123")

    response = server.post(event_xml("subscribe", EventKey=f"qrscene_{scene}", Ticket="T", create_time=1700000000))

    reply = server.reply_text(response)
    assert reply.startswith("您好，欢迎关注测试丰田4S店")
    assert reply.endswith(CONFIRMED) and "王先生，您的微信已绑定，以后保养提醒会通过微信发给您" in reply
    _assert_bound(db, customer_id)
    with db.transaction() as session:
        # the auto-created empty customer is merged away; its conversation is 王先生's now
        assert session.scalars(select(Customer.id)).all() == [customer_id]
        [event] = session.scalars(select(Message).where(Message.direction == "in")).all()
        conversation = session.get_one(Conversation, event.conversation_id)
        assert conversation.customer_id == customer_id
        [bound] = session.scalars(select(ConversationEvent).where(ConversationEvent.kind == "wechat_bound")).all()
        assert bound.data["via"] == "scene" and bound.data["order"] == "RO123" and bound.data["merged"] is True


def test_scan_binds_and_joins_the_history_to_the_owners_conversation(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, dealer_id, customer_id = setup
    with db.transaction() as session:  # 王先生 already talks to the dealer (e.g. by SMS)
        existing = Conversation(dealer_id=dealer_id, customer_id=customer_id, state={})
        session.add(existing)
        session.flush()
        existing_id = existing.id
    Chat(server).say("你好")  # the openid is filed under a new, empty customer
    anonymous = _identity(db).customer_id  # type: ignore[union-attr]
    assert anonymous != customer_id

    response = server.post(event_xml("SCAN", EventKey=binding.scene_for(customer_id, SECRET), Ticket="T", create_time=1700000100))

    assert server.reply_text(response) == CONFIRMED
    _assert_bound(db, customer_id)
    assert _customer(db, anonymous) is None
    with db.transaction() as session:
        conversations = {m.conversation_id for m in session.scalars(select(Message))}
        assert conversations == {existing_id}  # "你好", its reply, the SCAN and the confirmation
        texts = [m.text for m in session.scalars(select(Message).order_by(Message.id))]
        assert texts[0] == "你好" and texts[-1] == CONFIRMED
        assert {row.customer_id for row in session.scalars(select(Outbox))} == {customer_id}

    # the next message is 王先生's
    Chat(server).say("我的车辆")
    with db.transaction() as session:
        last = session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id.desc())).first()
        assert last is not None and last.conversation_id == existing_id


def test_forged_scenes_bind_nothing(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    with db.transaction() as session:  # a customer of another dealer
        other = make_customer(session, make_dealer(session, slug="other"), name="李女士", phone="+8613900139000", plate="粤A11111")
        other_id = other.id
    genuine = binding.scene_for(customer_id, SECRET)
    forged = f"b.{customer_id + 1}." + genuine.split(".", 2)[2]
    wrong_key = binding.scene_for(customer_id, "somebody-elses-secret-key")

    for create_time, scene in enumerate((forged, wrong_key, binding.scene_for(other_id, SECRET)), start=1700000200):
        response = server.post(event_xml("SCAN", EventKey=scene, Ticket="T", create_time=create_time))
        assert server.reply_text(response) == TEXTS["bind_scene_invalid"]["zh"]

    identity = _identity(db)
    assert identity is not None and identity.customer_id not in (customer_id, other_id)
    assert _customer(db, customer_id).preferred_channel is None  # type: ignore[union-attr]
    with db.transaction() as session:
        assert session.scalars(select(ConversationEvent).where(ConversationEvent.kind == "wechat_bound")).all() == []

    # a subscribe with a forged scene: welcomed, with the note, not bound
    response = server.post(event_xml("subscribe", EventKey=f"qrscene_{forged}", create_time=1700000300))
    reply = server.reply_text(response)
    assert reply.startswith("您好，欢迎关注") and reply.endswith(TEXTS["bind_scene_invalid"]["zh"])
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if number == 0:
            return digits


def test_an_expired_scene_does_not_bind(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    expired = binding.scene_for(customer_id, SECRET, order="RO123", now=datetime.now(UTC) - timedelta(days=31))

    response = server.post(event_xml("SCAN", EventKey=expired, Ticket="T", create_time=1700000500))

    assert server.reply_text(response) == TEXTS["bind_scene_invalid"]["zh"]
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]
    assert _customer(db, customer_id).preferred_channel is None  # type: ignore[union-attr]


def test_a_scene_altered_in_its_day_does_not_bind(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    old = binding.scene_for(customer_id, SECRET, now=datetime.now(UTC) - timedelta(days=40))
    body, day, mac = old.rsplit(".", 2)
    renewed = f"{body}.{_base36(int(day, 36) + 39)}.{mac}"  # yesterday's day, the old MAC

    response = server.post(event_xml("SCAN", EventKey=renewed, Ticket="T", create_time=1700000600))

    assert server.reply_text(response) == TEXTS["bind_scene_invalid"]["zh"]
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]
    assert _customer(db, customer_id).preferred_channel is None  # type: ignore[union-attr]
    with db.transaction() as session:
        assert session.scalars(select(ConversationEvent).where(ConversationEvent.kind == "wechat_bound")).all() == []


def test_an_ordinary_scan_stays_silent(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup

    response = server.post(event_xml("SCAN", EventKey="showroom42", Ticket="T", create_time=1700000400))

    assert response.text == "success"
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]


# -- phone + SMS code ----------------------------------------------------------------------------


def test_phone_and_code_bind_after_a_wrong_code(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    chat = Chat(server)
    chat.say("你好")

    assert chat.say("绑定") == TEXTS["bind_ask_phone"]["zh"].format(dealer="测试丰田4S店")
    assert chat.say("我的手机是 138 0013 8000") == TEXTS["bind_code_sent"]["zh"].format(last4="8000")

    [sms] = _codes(db)
    assert (sms.channel, sms.address, sms.customer_id, sms.status) == (Channel.sms, PHONE, customer_id, OutboxStatus.pending)
    assert sms.message_id is None and sms.data["purpose"] == "wechat_bind"
    code = _code_of(sms)
    flow = _state(db, _identity(db).customer_id)["wechat_bind"]  # type: ignore[union-attr]
    assert flow["step"] == "code" and code not in str(flow)  # a hash, not the code

    wrong = "000000" if code != "000000" else "111111"
    assert chat.say(wrong) == TEXTS["bind_code_wrong"]["zh"].format(left="4")
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]

    assert chat.say(code) == CONFIRMED
    _assert_bound(db, customer_id)
    assert "wechat_bind" not in _state(db, customer_id)

    # out of the flow: the bot answers as usual, and a code-like text is no longer a code
    reply = chat.say("预约保养")
    assert reply and reply not in {t["zh"] for t in TEXTS.values()}
    assert len(_codes(db)) == 1


def test_an_expired_code_starts_over(setup, app, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    chat = Chat(server)
    chat.say("bind")
    chat.say("13800138000")
    first = _code_of(_codes(db)[0])

    pipeline = app.state.pipeline
    real_clock = pipeline.clock
    pipeline.clock = lambda: real_clock() + timedelta(minutes=11)
    try:
        assert chat.say(first) == TEXTS["bind_code_expired"]["zh"]
        assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]
        assert chat.say("13800138000") == TEXTS["bind_code_sent"]["zh"].format(last4="8000")
    finally:
        pipeline.clock = real_clock
    second_row = _codes(db)[1]
    second = _code_of(second_row)
    if second != first:  # the old code is worth nothing now
        assert chat.say(first) == TEXTS["bind_code_wrong"]["zh"].format(left="4")
    assert chat.say(second) == CONFIRMED
    _assert_bound(db, customer_id)


def test_too_many_wrong_codes_start_over(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    chat = Chat(server)
    chat.say("绑定手机")
    chat.say("13800138000")
    code = _code_of(_codes(db)[0])
    wrong = "000000" if code != "000000" else "111111"

    replies = [chat.say(wrong) for _ in range(5)]

    assert replies[-1] == TEXTS["bind_too_many"]["zh"]
    assert chat.say(code) != CONFIRMED  # even the right code is refused now
    assert _identity(db).customer_id != customer_id  # type: ignore[union-attr]


def test_an_unknown_phone_is_told_so_and_offered_a_person(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, customer_id = setup
    chat = Chat(server)
    chat.say("绑定")

    assert chat.say("13912345678") == TEXTS["bind_not_found"]["zh"]
    assert "人工" in TEXTS["bind_not_found"]["zh"]
    assert _codes(db) == []
    assert chat.say("12345") == TEXTS["bind_phone_invalid"]["zh"]

    # "人工" leaves the bind flow and reaches the flows (the handoff)
    reply = chat.say("人工")
    assert reply not in {t["zh"] for t in TEXTS.values()}
    identity = _identity(db)
    assert identity is not None and identity.customer_id != customer_id
    assert "wechat_bind" not in _state(db, identity.customer_id)
    assert _customer(db, customer_id).preferred_channel is None  # type: ignore[union-attr]


def test_cancel_leaves_the_flow(setup, db) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = setup
    chat = Chat(server)
    chat.say("绑定")

    assert chat.say("取消") == TEXTS["bind_cancelled"]["zh"]
    assert "wechat_bind" not in _state(db, _identity(db).customer_id)  # type: ignore[union-attr]
    assert _codes(db) == []
