"""WeChat outside the 48 h window: reminders go as template messages or subscription notices.

Inside the owner's customer-service window a reminder goes as a customer-service message, as a
reply does; outside it the dealer's `ChannelAccount.config["notices"]` decides, and a kind
without a notice fails with wechat_window_closed so the scheduler can fall back to SMS. Talks
to the fake WeChat API (tests/fakes/wechat_api.py) over real HTTP.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
)
from bot.outbox import Dispatcher, SendError
from integrations.wechat.sender import WeChatSender
from tests.factories import make_customer, make_dealer
from tests.fakes.wechat_api import FakeWeChatAPI

APPID = "wx0123456789abcdef"
SECRET = "s3cr3t-0123456789abcdef0123456789"
OPENID = "oABCD1234567890abcdefghijklm"
CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
SUBSCRIBE = "/cgi-bin/message/subscribe/bizsend"

NOTICES = {
    "reminder:maintenance": {
        "type": "template",
        "template_id": "TPL_MAINTENANCE",
        "fields": {"thing1": "{service}", "car_number2": "{plate}", "time3": "{date}", "thing4": "{dealer}"},
        "page": "https://dealer.example.com/book?plate={plate}",
    },
    "reminder:inspection": {
        "type": "subscribe",
        "template_id": "SUB_INSPECTION",
        "fields": {"thing1": "{vehicle}年检", "date2": "{due}"},
        "page": "https://dealer.example.com/inspection",
    },
}
DATA = {"service": "小保养", "plate": "粤B12345", "date": "2026-12-01 10:00", "dealer": "测试丰田4S店", "vehicle": "凯美瑞", "due": "2026-12-31"}


@pytest.fixture
def api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as fake:
        yield fake
    assert not fake.calls("/cgi-bin/token"), "cgi-bin/token rotates the token under other processes"


@pytest.fixture
def dealer_id(db: Database, api: FakeWeChatAPI) -> int:
    with db.transaction() as session:
        dealer = make_dealer(session)
        session.add(
            ChannelAccount(
                dealer_id=dealer.id,
                channel=Channel.wechat,
                config={"appid": APPID, "api_base_url": api.url, "notices": NOTICES},
                secrets={"secret": SECRET},
            )
        )
        customer = make_customer(session, dealer)
        session.add(ChannelIdentity(dealer_id=dealer.id, customer_id=customer.id, channel=Channel.wechat, address=OPENID))
        return dealer.id


def owner_wrote(db: Database, dealer_id: int, ago: timedelta) -> None:
    """An inbound text from the owner `ago` before now: within 48 h it opens the window."""
    with db.transaction() as session:
        session.add(
            Message(
                dealer_id=dealer_id, channel=Channel.wechat, direction=Direction.inbound, status=MessageStatus.handled,
                address=OPENID, kind="text", text="你好", payload={}, created_at=datetime.now(UTC) - ago,
            )
        )


def window_open(db: Database, dealer_id: int) -> None:
    owner_wrote(db, dealer_id, timedelta(hours=2))


def window_closed(db: Database, dealer_id: int) -> None:
    owner_wrote(db, dealer_id, timedelta(hours=49))


def message(dealer_id: int, kind: str, data: dict[str, Any] | None = None, outbox_id: int = 7,
            text: str = "王先生您好，您的爱车该做保养了，回复1预约。") -> OutboundMessage:
    return OutboundMessage(outbox_id=outbox_id, dealer_id=dealer_id, channel=Channel.wechat, address=OPENID,
                           text=text, kind=kind, data=dict(DATA if data is None else data))


def set_notices(db: Database, dealer_id: int, notices: dict[str, Any]) -> None:
    with db.transaction() as session:
        account = session.scalar(select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id))
        assert account is not None
        account.config = {**account.config, "notices": notices}


def failure(db: Database, msg: OutboundMessage) -> SendError:
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(msg)
    return caught.value


def notice_sends(api: FakeWeChatAPI) -> list:  # type: ignore[type-arg]
    return api.calls(TEMPLATE) + api.calls(SUBSCRIBE)


# -- which way a message goes --------------------------------------------------------------


def test_inside_the_window_a_reminder_goes_as_a_customer_service_message(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_open(db, dealer_id)
    assert WeChatSender(db).send(message(dealer_id, "reminder:maintenance")) == "custom:7"

    [request] = api.calls(CUSTOM)
    assert request.json == {"touser": OPENID, "msgtype": "text", "text": {"content": "王先生您好，您的爱车该做保养了，回复1预约。"}}
    assert notice_sends(api) == []


def test_a_used_up_window_counts_as_closed(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_open(db, dealer_id)
    with db.transaction() as session:  # the owner's message opened 5; all 5 went out since
        for number in range(5):
            at = datetime.now(UTC) - timedelta(hours=1, minutes=number)
            session.add(Outbox(dealer_id=dealer_id, dedupe_key=f"sent:{number}", kind="reply", channel=Channel.wechat,
                               address=OPENID, body="x", status=OutboxStatus.sent, sent_at=at, not_before=at))

    assert WeChatSender(db).send(message(dealer_id, "reminder:maintenance")).startswith("template:")
    assert api.calls(CUSTOM) == []


def test_outside_the_window_a_mapped_kind_goes_as_a_template_message(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    long_name = "🚗测试丰田4S店（广州天河区中山大道西店）售后服务中心✨"
    provider_id = WeChatSender(db).send(message(dealer_id, "reminder:maintenance", {**DATA, "dealer": long_name}))

    [request] = api.calls(TEMPLATE)
    assert provider_id == f"template:{_msgid(api)}" and provider_id != "template:None"
    assert request.query["access_token"] == api.current_token
    assert request.json == {
        "touser": OPENID,
        "template_id": "TPL_MAINTENANCE",
        "url": "https://dealer.example.com/book?plate=粤B12345",
        "data": {
            "thing1": {"value": "小保养"},
            "car_number2": {"value": "粤B12345"},
            "time3": {"value": "2026-12-01 10:00"},
            "thing4": {"value": "测试丰田4S店（广州天河区中山大道西店）"},  # emoji gone, 20 characters
        },
    }
    assert len(request.json["data"]["thing4"]["value"]) == 20
    assert api.calls(CUSTOM) == []


def test_values_other_than_thing_are_cut_at_32_characters(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    set_notices(db, dealer_id, {"survey": {"type": "template", "template_id": "TPL_SURVEY",
                                           "fields": {"character_string1": "{order}", "thing2": "⭐{advisor}⭐"}}})
    WeChatSender(db).send(message(dealer_id, "survey", {"order": "RO" + "0123456789" * 4, "advisor": "李师傅"}))

    [request] = api.calls(TEMPLATE)
    assert request.json["data"] == {
        "character_string1": {"value": ("RO" + "0123456789" * 4)[:32]},
        "thing2": {"value": "李师傅"},
    }
    assert "url" not in request.json


def test_outside_the_window_a_subscribe_mapping_goes_through_bizsend(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    assert WeChatSender(db).send(message(dealer_id, "reminder:inspection", outbox_id=12)) == "subscribe:12"

    [request] = api.calls(SUBSCRIBE)
    assert request.json == {
        "touser": OPENID,
        "template_id": "SUB_INSPECTION",
        "page": "https://dealer.example.com/inspection",
        "data": {"thing1": {"value": "凯美瑞年检"}, "date2": {"value": "2026-12-31"}},
    }
    assert api.calls(TEMPLATE) == [] and api.calls(CUSTOM) == []


def test_a_miniprogram_page_goes_as_miniprogram(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    set_notices(db, dealer_id, {"appointment:tomorrow": {
        "type": "subscribe", "template_id": "SUB_APPT", "fields": {"time1": "{date}"},
        "page": "pages/appointment?ref={reference}", "miniprogram_appid": "wxmini0123456789",
    }})
    WeChatSender(db).send(message(dealer_id, "appointment:tomorrow", {"date": "2026-12-01 10:00", "reference": "AP123"}))

    [request] = api.calls(SUBSCRIBE)
    assert request.json["miniprogram"] == {"appid": "wxmini0123456789", "pagepath": "pages/appointment?ref=AP123"}
    assert "page" not in request.json


def test_outside_the_window_an_unmapped_kind_fails_for_sms(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    error = failure(db, message(dealer_id, "reminder:insurance"))
    assert (error.reason, error.retry) == ("wechat_window_closed", False)
    assert api.requests == [], "nothing is sent, not even a token fetched"


def test_an_owner_who_never_wrote_has_no_window(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    error = failure(db, message(dealer_id, "reminder:insurance"))
    assert error.reason == "wechat_window_closed"
    assert WeChatSender(db).send(message(dealer_id, "reminder:maintenance")).startswith("template:")


def test_a_missing_data_key_fails_the_whole_send(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    data = {k: v for k, v in DATA.items() if k != "date"}
    error = failure(db, message(dealer_id, "reminder:maintenance", data))
    assert (error.reason, error.retry) == ("wechat_notice_field_missing:date", False)
    assert notice_sends(api) == [] and api.calls(CUSTOM) == []


def test_a_format_string_cannot_reach_into_attributes(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    set_notices(db, dealer_id, {"survey": {"type": "template", "template_id": "T", "fields": {"thing1": "{service.__class__}"}}})
    error = failure(db, message(dealer_id, "survey"))
    assert error.reason.startswith("wechat_bad_notice_field:") and not error.retry
    assert notice_sends(api) == []


def test_a_broken_mapping_fails_for_good(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    set_notices(db, dealer_id, {"survey": {"type": "sms", "template_id": "T", "fields": {"thing1": "x"}}})
    error = failure(db, message(dealer_id, "survey"))
    assert (error.reason, error.retry) == ("wechat_bad_notice_config:survey", False)


@pytest.mark.parametrize(
    ("kind", "path", "errcode", "reason", "retry"),
    [
        ("reminder:inspection", SUBSCRIBE, 43101, "wechat_not_subscribed", False),
        ("reminder:maintenance", TEMPLATE, 43101, "wechat_not_subscribed", False),
        ("reminder:maintenance", TEMPLATE, 40037, "wechat_bad_template", False),
        ("reminder:inspection", SUBSCRIBE, 40037, "wechat_bad_template", False),
        ("reminder:maintenance", TEMPLATE, 45009, "wechat_api_quota", True),
        ("reminder:maintenance", TEMPLATE, 47003, "wechat_error:47003", False),
    ],
)
def test_notice_error_codes(db: Database, api: FakeWeChatAPI, dealer_id: int, kind: str, path: str,
                            errcode: int, reason: str, retry: bool) -> None:
    window_closed(db, dealer_id)
    api.fail_next(errcode, "from WeChat", path=path)
    error = failure(db, message(dealer_id, kind))
    assert (error.reason, error.retry) == (reason, retry)
    assert len(api.calls(path)) == 1, "no retry inside send"


def test_43101_does_not_opt_the_owner_out(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    api.fail_next(43101, path=SUBSCRIBE)
    failure(db, message(dealer_id, "reminder:inspection"))
    with db.sessions() as session:
        assert session.scalar(select(ChannelIdentity.opted_out)) is False


def test_a_template_refresh_on_40001_retries_once(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    sender = WeChatSender(db)
    sender.send(message(dealer_id, "reminder:maintenance", outbox_id=1))
    api.fail_next(40001, path=TEMPLATE)
    assert sender.send(message(dealer_id, "reminder:maintenance", outbox_id=2)).startswith("template:")
    assert len(api.calls(TEMPLATE)) == 3 and api.token_requests == 2


@pytest.mark.parametrize("state", ["closed", "never"])
def test_a_reply_always_goes_as_a_customer_service_message(db: Database, api: FakeWeChatAPI, dealer_id: int, state: str) -> None:
    if state == "closed":
        window_closed(db, dealer_id)
    set_notices(db, dealer_id, {"reply": {"type": "template", "template_id": "T", "fields": {"thing1": "{service}"}}})
    assert WeChatSender(db).send(message(dealer_id, "reply", text="好的，已为您预约。")) == "custom:7"
    [request] = api.calls(CUSTOM)
    assert request.json["text"]["content"] == "好的，已为您预约。"
    assert notice_sends(api) == []


# -- through the dispatcher ----------------------------------------------------------------


def test_dispatcher_records_the_template_msgid(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    window_closed(db, dealer_id)
    with db.transaction() as session:
        row = Outbox(dealer_id=dealer_id, dedupe_key="reminder:maintenance:1", kind="reminder:maintenance",
                     channel=Channel.wechat, address=OPENID, body="该保养了", data=DATA,
                     status=OutboxStatus.pending, not_before=datetime.now(UTC))
        session.add(row)
        session.flush()
        row_id = row.id
    assert Dispatcher(db=db, senders={Channel.wechat: WeChatSender(db)}).run_once() == 1
    with db.sessions() as session:
        stored = session.get_one(Outbox, row_id)
        assert stored.status == OutboxStatus.sent and stored.provider_id == f"template:{_msgid(api)}"


def _msgid(api: FakeWeChatAPI) -> int:
    # the fake numbers template sends from 1000 on; the last one sent has the highest id
    return 999 + len(api.calls(TEMPLATE))
