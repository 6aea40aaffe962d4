"""The WeChat webhook: signatures, safe-mode crypto, replay, refusals, message kinds, the 5 s rule."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from wechatpy.crypto import PrpCrypto

from bot.models import (
    ChannelIdentity,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    WebhookRequest,
)
from integrations.wechat import webhook
from integrations.wechat.security import Refused, SafeMode
from integrations.wechat.texts import TEXTS
from tests.integrations.wechat_fixtures import (
    OPENID,
    VECTOR_AES_KEY,
    VECTOR_APPID,
    VECTOR_ENCRYPTED,
    VECTOR_NONCE,
    VECTOR_RANDOM,
    VECTOR_TEXT,
    VECTOR_TIMESTAMP,
    VECTOR_TOKEN,
    WeChatServer,
    add_account,
    decrypt,
    encrypt,
    encrypt_raw,
    event_xml,
    message_xml,
    sign,
    text_xml,
)

pytestmark = pytest.mark.db


class Counter:
    def __init__(self) -> None:
        self.nlu = 0
        self.turns = 0


@pytest.fixture
def counts(app) -> Counter:  # type: ignore[no-untyped-def]
    """Counts NLU calls and bot turns of the app's pipeline."""
    counter = Counter()
    pipeline = app.state.pipeline
    real_nlu, real_respond = pipeline.nlu, pipeline.respond

    class CountingNLU:
        def parse(self, *args: Any, **kwargs: Any) -> Any:
            counter.nlu += 1
            return real_nlu.parse(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_nlu, name)

    def respond(*args: Any, **kwargs: Any) -> Any:
        counter.turns += 1
        return real_respond(*args, **kwargs)

    pipeline.nlu = CountingNLU()
    pipeline.respond = respond
    return counter


@pytest.fixture(autouse=True)
def _no_turn_outlives_its_test() -> Any:
    yield
    assert webhook.wait_for_turns(timeout=30)


def _server(client, db, mode: str = "safe", allow_plain: bool = False, **kw: Any) -> WeChatServer:  # type: ignore[no-untyped-def]
    add_account(db, mode=mode, allow_plain=allow_plain, **kw)
    return WeChatServer(client, mode=mode)


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def _inbound(db) -> list[Message]:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return list(session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id)))


def _outbox(db) -> list[Outbox]:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def _assert_nothing_stored(db, counts: Counter) -> None:  # type: ignore[no-untyped-def]
    assert _count(db, Message) == 0
    assert _count(db, WebhookRequest) == 0
    assert counts.nlu == 0 and counts.turns == 0


# -- the crypto vector ---------------------------------------------------------------------------


def test_our_encryption_matches_the_official_vector() -> None:
    assert encrypt(VECTOR_TEXT, random=VECTOR_RANDOM) == VECTOR_ENCRYPTED
    assert decrypt(VECTOR_ENCRYPTED) == (VECTOR_TEXT, VECTOR_APPID)


def test_wechatpy_agrees_with_the_vector_and_the_webhook_decrypts_it() -> None:
    prp = PrpCrypto(__import__("base64").b64decode(VECTOR_AES_KEY + "="))
    prp.get_random_string = lambda: VECTOR_RANDOM.decode()  # type: ignore[method-assign]
    assert prp.encrypt(VECTOR_TEXT, VECTOR_APPID).decode() == VECTOR_ENCRYPTED

    safe = SafeMode(VECTOR_TOKEN, VECTOR_AES_KEY, VECTOR_APPID)
    msg_signature = sign(VECTOR_TOKEN, VECTOR_TIMESTAMP, VECTOR_NONCE, VECTOR_ENCRYPTED)
    assert safe.decrypt(VECTOR_ENCRYPTED, msg_signature, VECTOR_TIMESTAMP, VECTOR_NONCE) == VECTOR_TEXT
    with pytest.raises(Refused) as wrong:
        safe.decrypt(VECTOR_ENCRYPTED, "0" * 40, VECTOR_TIMESTAMP, VECTOR_NONCE)
    assert wrong.value.status == 403
    with pytest.raises(Refused) as other_app:
        SafeMode(VECTOR_TOKEN, VECTOR_AES_KEY, "wx0000000000000000").decrypt(
            VECTOR_ENCRYPTED, msg_signature, VECTOR_TIMESTAMP, VECTOR_NONCE
        )
    assert other_app.value.status == 403


# -- URL check -----------------------------------------------------------------------------------


def test_url_check_answers_echostr_when_signed(client, db) -> None:  # type: ignore[no-untyped-def]
    add_account(db)
    timestamp, nonce = str(int(time.time())), "n0nce"
    params = {"signature": sign(VECTOR_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "echostr": "e42"}

    ok = client.get("/wechat/test", params=params)
    wrong = client.get("/wechat/test", params={**params, "signature": "0" * 40})
    unknown = client.get("/wechat/nope", params=params)

    assert ok.status_code == 200 and ok.text == "e42" and ok.headers["content-type"].startswith("text/plain")
    assert wrong.status_code == 403
    assert unknown.status_code == 404


def test_a_disabled_account_is_404(client, db) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, enabled=False)

    assert server.post(text_xml("你好")).status_code == 404


# -- messages in safe mode -----------------------------------------------------------------------


def test_text_runs_a_turn_and_is_answered_passively(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(text_xml("你好", msg_id=1001))

    assert response.status_code == 200
    reply = server.reply_text(response)
    assert reply.strip()
    [inbound] = _inbound(db)
    assert (inbound.kind, inbound.text, inbound.address, inbound.channel_message_id) == ("text", "你好", OPENID, "1001")
    assert inbound.status == MessageStatus.handled and inbound.intent
    assert counts.turns == 1
    rows = _outbox(db)
    assert rows and all(r.status == OutboxStatus.sent and r.provider_status == "passive" and r.sent_at for r in rows)
    assert "\n\n".join(r.body for r in rows) == reply


def test_voice_uses_the_recognition(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(message_xml("voice", MediaId="m1", Format="amr", Recognition="你好", MsgId=2001))

    assert server.reply_text(response).strip()
    [inbound] = _inbound(db)
    assert (inbound.kind, inbound.text) == ("voice", "你好")
    assert inbound.payload["media_id"] == "m1"
    assert counts.nlu == 1


def test_voice_without_recognition_gets_a_polite_answer_and_no_turn(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(message_xml("voice", MediaId="m2", Format="amr", Recognition="", MsgId=2002))

    assert server.reply_text(response) == TEXTS["voice_unrecognised"]["zh"]
    [inbound] = _inbound(db)
    assert inbound.kind == "voice" and inbound.status == MessageStatus.handled and inbound.intent is None
    assert counts.nlu == 0
    [row] = _outbox(db)
    assert row.status == OutboxStatus.sent and row.provider_status == "passive"


def test_location_is_stored_with_its_coordinates(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(
        message_xml("location", Location_X=23.134521, Location_Y=113.358803, Scale=20, Label="广州市天河区", MsgId=3001)
    )

    assert response.status_code == 200
    [inbound] = _inbound(db)
    assert inbound.kind == "location"
    assert inbound.payload == {"latitude": 23.134521, "longitude": 113.358803, "label": "广州市天河区", "scale": "20"}
    assert counts.turns == 1


@pytest.mark.parametrize(
    ("xml", "kind", "text", "payload", "ack"),
    [
        (
            message_xml("image", PicUrl="http://mmbiz.qpic.cn/x.jpg", MediaId="img1", MsgId=4001),
            "image", "[图片]", {"pic_url": "http://mmbiz.qpic.cn/x.jpg", "media_id": "img1"}, "image_received",
        ),
        (
            message_xml("link", Title="保养手册", Description="d", Url="https://example.com/a", MsgId=4002),
            "link", "[链接] 保养手册", {"url": "https://example.com/a", "title": "保养手册", "description": "d"}, "link_received",
        ),
    ],
)
def test_images_and_links_are_stored_and_acknowledged(client, db, counts, xml, kind, text, payload, ack) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(xml)

    assert server.reply_text(response) == TEXTS[ack]["zh"]
    [inbound] = _inbound(db)
    assert (inbound.kind, inbound.text, inbound.payload) == (kind, text, payload)
    assert counts.nlu == 0


def test_subscribe_is_welcomed_invited_to_bind_and_keeps_the_qr_scene(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(event_xml("subscribe", EventKey="qrscene_showroom42", Ticket="TICKET", create_time=1700000000))

    welcome = server.reply_text(response)
    assert welcome.startswith("您好，欢迎关注测试丰田4S店") and "回复“绑定”" in welcome
    [inbound] = _inbound(db)
    assert inbound.kind == "event"
    assert inbound.channel_message_id == f"{OPENID}:1700000000:subscribe"
    assert inbound.payload["scene"] == "showroom42" and inbound.payload["event_key"] == "qrscene_showroom42"
    assert counts.nlu == 0


def test_unsubscribe_opts_the_openid_out_without_a_reply(client, db) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    server.post(text_xml("你好", msg_id=5000))

    response = server.post(event_xml("unsubscribe", EventKey=""))

    assert response.text == "success"
    with db.transaction() as session:
        identity = session.scalars(select(ChannelIdentity).where(ChannelIdentity.address == OPENID)).one()
        assert identity.opted_out is True
    assert _inbound(db)[-1].payload == {"event": "unsubscribe"}
    assert _inbound(db)[-1].status == MessageStatus.handled


@pytest.mark.parametrize(
    ("xml", "payload"),
    [
        (event_xml("SCAN", EventKey="123", Ticket="T"), {"event": "SCAN", "scene": "123", "ticket": "T"}),
        (
            event_xml("LOCATION", Latitude=23.137466, Longitude=113.352425, Precision=119.385040),
            {"event": "LOCATION", "latitude": 23.137466, "longitude": 113.352425, "precision": "119.38504"},
        ),
        (
            event_xml("TEMPLATESENDJOBFINISH", MsgID=200163836, Status="failed:user block"),
            {"event": "TEMPLATESENDJOBFINISH", "status": "failed:user block", "msg_id": "200163836"},
        ),
    ],
)
def test_silent_events_are_stored_without_a_reply(client, db, counts, xml, payload) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(xml)

    assert response.status_code == 200 and response.text == "success"
    [inbound] = _inbound(db)
    assert inbound.kind == "event" and inbound.payload == payload and inbound.status == MessageStatus.handled
    assert counts.nlu == 0 and _outbox(db) == []


def test_menu_click_becomes_words_the_nlu_routes(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(event_xml("CLICK", EventKey="ROADSIDE"))

    assert server.reply_text(response).strip()
    [inbound] = _inbound(db)
    assert (inbound.kind, inbound.text, inbound.payload) == ("event", "道路救援", {"event": "CLICK", "key": "ROADSIDE"})
    assert inbound.intent and counts.turns == 1


# -- other modes ---------------------------------------------------------------------------------


def test_compatible_mode_reads_the_encrypted_part(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="compatible")
    params, body = server.request(text_xml("你好", msg_id=6001))
    # compatible mode carries the plaintext fields too; they are not signed and must not win
    forged = body.replace("<Content><![CDATA[你好]]></Content>".encode(), b"<Content><![CDATA[forged]]></Content>")

    response = server.send(params, forged)

    assert server.reply_text(response).strip()
    assert [m.text for m in _inbound(db)] == ["你好"]


def test_compatible_mode_takes_a_plain_body_only_when_plaintext_is_allowed(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="compatible")

    refused = server.post(text_xml("你好", msg_id=6002), encrypted=False)

    assert refused.status_code == 403
    _assert_nothing_stored(db, counts)


def test_plaintext_mode_works_when_allowed_and_warns(client, db, counts, caplog) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="plain", allow_plain=True)

    with caplog.at_level("WARNING"):
        response = server.post(text_xml("你好", msg_id=7001))

    assert server.reply_text(response).strip()
    assert [m.text for m in _inbound(db)] == ["你好"]
    assert any("plaintext" in r.getMessage() for r in caplog.records)


def test_plaintext_mode_is_refused_unless_allowed(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="plain", allow_plain=False)

    assert server.post(text_xml("你好")).status_code == 403
    _assert_nothing_stored(db, counts)


# -- refusals ------------------------------------------------------------------------------------


def test_wrong_signature_is_403(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="plain", allow_plain=True)
    params, body = server.request(text_xml("你好"))

    response = server.send({**params, "signature": sign("other-token", params["timestamp"], params["nonce"])}, body)

    assert response.status_code == 403
    _assert_nothing_stored(db, counts)


def test_wrong_msg_signature_is_403_even_with_a_right_signature(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    params, body = server.request(text_xml("你好"))

    missing = server.send({k: v for k, v in params.items() if k != "msg_signature"}, body)
    wrong = server.send({**params, "msg_signature": params["signature"]}, body)

    assert missing.status_code == 403 and wrong.status_code == 403
    _assert_nothing_stored(db, counts)


@pytest.mark.parametrize("offset", [301, -301])
def test_a_timestamp_301_seconds_off_is_403(client, db, counts, offset) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(text_xml("你好"), timestamp=str(int(time.time()) + offset))

    assert response.status_code == 403
    assert "timestamp" in response.text
    _assert_nothing_stored(db, counts)


def test_a_body_over_64_kb_is_413(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="plain", allow_plain=True)
    params, _ = server.request(text_xml("x"))
    big = text_xml("长" * 30_000).encode()  # 90 KB

    declared = server.send(params, big)

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    streamed = server.send(params, chunks())  # chunked: no Content-Length to trust

    assert declared.status_code == 413 and streamed.status_code == 413
    _assert_nothing_stored(db, counts)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol4;</Content><MsgId>1</MsgId><Encrypt>&lol4;</Encrypt></xml>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId><Encrypt>&xxe;</Encrypt></xml>"""


@pytest.mark.parametrize("mode", ["safe", "plain"])
@pytest.mark.parametrize(
    "body",
    ["<xml><Encrypt>abc</Encrypt>", "not xml at all", "<other><Encrypt>x</Encrypt></other>", BILLION_LAUGHS, EXTERNAL_ENTITY],
    ids=["truncated", "not-xml", "wrong-root", "billion-laughs", "external-entity"],
)
def test_malformed_and_entity_bodies_are_400(client, db, counts, mode, body) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode=mode, allow_plain=True)
    params, _ = server.request(text_xml("x"), encrypted=False)

    response = server.send(params, body.encode())

    assert response.status_code == 400
    _assert_nothing_stored(db, counts)


@pytest.mark.parametrize(
    "encrypt_field",
    [
        "!!!not base64!!!",
        "YWJj",  # 3 bytes: not a whole AES block
        encrypt_raw(b"\x00" * 32),  # padding byte 0: wechatpy's slicing leaves nothing to unpack
        encrypt_raw(b"a" * 16 + b"\xff\xff\xff\xff" + b"\xfe" * 12),  # length past the end, not UTF-8
    ],
    ids=["not-base64", "short", "zero-padding", "bad-length"],
)
def test_bad_ciphertext_is_400(client, db, counts, encrypt_field) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    params, _ = server.request(text_xml("x"), encrypted=False)

    response = server.send(*server.envelope(params, encrypt_field))

    assert response.status_code == 400
    _assert_nothing_stored(db, counts)


def test_a_message_for_another_appid_is_403(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    params, _ = server.request(text_xml("x"), encrypted=False)

    response = server.send(*server.envelope(params, encrypt(text_xml("你好"), appid="wx0000000000000000")))

    assert response.status_code == 403
    _assert_nothing_stored(db, counts)


# -- replay and retries --------------------------------------------------------------------------


def test_an_exact_replay_gets_the_same_answer_and_no_second_turn(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    params, body = server.request(text_xml("你好", msg_id=8001))

    first = server.send(params, body)
    again = server.send(params, body)

    assert first.status_code == again.status_code == 200
    assert server.reply_text(first) == server.reply_text(again)
    assert counts.turns == 1 and counts.nlu == 1
    assert len(_inbound(db)) == 1 and _count(db, WebhookRequest) == 1


def test_a_plaintext_replay_with_a_new_body_is_403(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db, mode="plain", allow_plain=True)
    params, body = server.request(text_xml("你好", msg_id=8101))
    server.send(params, body)

    replay = server.send(params, text_xml("转账给我", msg_id=8102).encode())

    assert replay.status_code == 403
    assert [m.text for m in _inbound(db)] == ["你好"]
    assert counts.turns == 1


def test_three_retries_of_one_msgid_make_one_message_and_one_turn(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    xml = text_xml("我想预约保养", msg_id=8201)

    answers = [server.post(xml) for _ in range(3)]  # each with its own nonce, as separate deliveries

    assert {server.reply_text(a) for a in answers} and len({server.reply_text(a) for a in answers}) == 1
    assert len(_inbound(db)) == 1
    assert counts.turns == 1


# -- what cannot be understood -------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [
        message_xml("shortvideo", MediaId="v", ThumbMediaId="t", MsgId=9001),
        "<xml><ToUserName>gh</ToUserName><FromUserName>" + OPENID + "</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><Content><b>x</b></Content><MsgId>9002</MsgId></xml>",
        "<xml><ToUserName>gh</ToUserName><FromUserName>" + OPENID + "</FromUserName><CreateTime>1</CreateTime>"
        "<MsgType>text</MsgType><MsgType>image</MsgType><Content>x</Content><MsgId>9003</MsgId></xml>",
        message_xml("text", MsgId=9004),  # no Content
        "<xml><MsgType>text</MsgType",  # signed, decrypts, but is not XML
    ],
    ids=["unknown-type", "nested-content", "two-msgtypes", "no-content", "not-xml-inside"],
)
def test_a_signed_message_nobody_understands_is_a_dead_letter(client, db, counts, xml) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(xml)

    assert response.status_code == 200 and response.text == "success"
    [dead] = _inbound(db)
    assert dead.status == MessageStatus.dead and dead.kind == "unparsed"
    assert dead.payload["xml"] == xml and dead.payload["reason"]
    assert counts.nlu == 0


def test_control_characters_wechat_does_not_escape_are_tolerated(client, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    response = server.post(text_xml("你好\x01\x1f"))

    assert response.status_code == 200
    assert [m.text for m in _inbound(db)] == ["你好"]


def test_an_unexpected_error_answers_success_after_storing(client, db, counts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(webhook, "mark_passive_sent", broken)
    response = server.post(text_xml("你好", msg_id=9101))

    assert response.status_code == 200 and response.text == "success"
    assert len(_inbound(db)) == 1
    assert all(r.status == OutboxStatus.pending for r in _outbox(db))  # the dispatcher sends them


# -- the 5-second rule ---------------------------------------------------------------------------


def test_a_slow_turn_answers_success_and_leaves_the_reply_to_the_dispatcher(client, app, db, counts) -> None:  # type: ignore[no-untyped-def]
    server = _server(client, db)
    app.state.wechat_deadline = 0.5
    pipeline = app.state.pipeline
    real_respond = pipeline.respond
    finished = threading.Event()

    def slow_respond(*args: Any, **kwargs: Any) -> Any:
        time.sleep(6)
        try:
            return real_respond(*args, **kwargs)
        finally:
            finished.set()

    pipeline.respond = slow_respond
    started = time.monotonic()
    response = server.post(text_xml("你好", msg_id=9201))
    elapsed = time.monotonic() - started

    assert response.status_code == 200 and response.text == "success"
    assert elapsed < 2.0
    assert webhook.wait_for_turns(timeout=20) and finished.is_set()
    rows = _outbox(db)
    assert rows and all(r.status == OutboxStatus.pending and r.provider_status is None for r in rows)
    [inbound] = _inbound(db)
    assert inbound.status == MessageStatus.handled
