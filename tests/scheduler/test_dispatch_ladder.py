"""The channel ladder: a planner row goes by WeChat while WeChat can carry it, else by SMS, never both.

Talks through the real WeChat and Twilio clients to the fake WeChat and fake Twilio servers on
127.0.0.1, on a frozen clock. The fixtures here are shared by the other test_dispatch_* modules.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
)
from bot.outbox import Dispatcher, DispatchPolicy
from integrations.twilio.sender import TwilioSender
from integrations.wechat.sender import WeChatSender
from tests.factories import make_customer
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integrations.sms_fixtures import PUBLIC_URL, add_sms_account

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Guangzhou
APPID = "wx0123456789abcdef"
SECRET = "s3cr3t-0123456789abcdef0123456789"
OPENID = "oABCD1234567890abcdefghijklm"
PHONE = "+8613800138000"
CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
NOTICES = {
    "reminder:maintenance": {
        "type": "template",
        "template_id": "TPL_MAINTENANCE",
        "fields": {"thing1": "{service}", "car_number2": "{plate}", "time3": "{due}"},
    },
}
DATA = {"rule": "maintenance", "lang": "zh", "vehicle_id": 1, "plate": "粤B12345", "service": "minor_service", "due": "2026-11-30"}
BODY = "王先生您好，您的爱车粤B12345该做保养了，回复1预约。"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def wechat() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dealer_id(db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI) -> int:
    """A dealer with a Twilio number and a WeChat account whose maintenance reminder has a template notice."""
    dealer_id = add_sms_account(db, api_base=twilio.url)
    with db.transaction() as session:
        session.add(
            ChannelAccount(
                dealer_id=dealer_id, channel=Channel.wechat,
                config={"appid": APPID, "api_base_url": wechat.url, "notices": NOTICES}, secrets={"secret": SECRET},
            )
        )
    return dealer_id


@pytest.fixture
def dispatcher(db: Database, clock: Clock) -> Dispatcher:
    return make_dispatcher(db, clock)


def make_dispatcher(db: Database, clock: Clock, **kw: Any) -> Dispatcher:
    senders = {
        Channel.wechat: WeChatSender(db, timeout=2, clock=clock),
        Channel.sms: TwilioSender(db, public_url=PUBLIC_URL, timeout=2, clock=clock),
    }
    return Dispatcher(db=db, senders=senders, clock=clock, **kw)


def add_owner(
    db: Database, dealer_id: int, *, openid: str | None = OPENID, phone: str | None = PHONE, sms_identity: bool = False,
    wechat_opted_out: bool = False, sms_opted_out: bool = False, name: str = "王先生", plate: str = "粤B12345",
    preferred: Channel | None = None,
) -> int:
    """An owner: following the WeChat account when `openid`, with a phone on file when `phone`."""
    with db.transaction() as session:
        customer = make_customer(session, session.get_one(Dealer, dealer_id), name=name, phone=phone or "", plate=plate)
        customer.phone = phone
        customer.preferred_channel = preferred
        if openid:
            session.add(ChannelIdentity(dealer_id=dealer_id, customer_id=customer.id, channel=Channel.wechat, address=openid,
                                        opted_out=wechat_opted_out))
        if sms_identity or sms_opted_out:
            session.add(ChannelIdentity(dealer_id=dealer_id, customer_id=customer.id, channel=Channel.sms, address=PHONE,
                                        opted_out=sms_opted_out))
        return customer.id


def plan(
    db: Database, dealer_id: int, customer_id: int, *, kind: str = "reminder:maintenance", data: dict[str, Any] | None = None,
    due: datetime = NOW, key: str | None = None, body: str = BODY, status: OutboxStatus = OutboxStatus.pending,
    sent_at: datetime | None = None,
) -> int:
    """A row as the planner writes it: no channel, no address, an owner."""
    with db.transaction() as session:
        row = Outbox(
            dealer_id=dealer_id, customer_id=customer_id, dedupe_key=key or f"{kind}:{customer_id}:{due.isoformat()}:{body[:8]}",
            kind=kind, channel=None, address=None, body=body, data=dict(DATA if data is None else data), status=status,
            not_before=due, sent_at=sent_at, attempts=0,
        )
        session.add(row)
        session.flush()
        return row.id


def owner_wrote(db: Database, dealer_id: int, at: datetime, openid: str = OPENID) -> None:
    """An inbound WeChat text at `at`: for 48 h it opens the customer-service window."""
    with db.transaction() as session:
        session.add(Message(dealer_id=dealer_id, channel=Channel.wechat, direction=Direction.inbound, status=MessageStatus.handled,
                            address=openid, kind="text", text="你好", payload={}, created_at=at))


def row(db: Database, outbox_id: int) -> Outbox:
    with db.sessions() as session:
        return session.get_one(Outbox, outbox_id)


# -- which way it goes ------------------------------------------------------------------------


def test_an_open_wechat_window_carries_the_reminder_as_a_customer_service_message(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=3))
    outbox_id = plan(db, dealer_id, owner)

    assert dispatcher.run_once() == 1

    [request] = wechat.calls(CUSTOM)
    assert request.json["touser"] == OPENID and request.json["text"]["content"] == BODY
    assert twilio.requests == []
    sent = row(db, outbox_id)
    assert (sent.status, sent.channel, sent.address) == (OutboxStatus.sent, Channel.wechat, OPENID)
    assert sent.provider_id == f"custom:{outbox_id}" and sent.attempts == 1 and sent.sent_at == NOW


def test_a_closed_window_with_a_notice_configured_sends_the_template_notice(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=49))
    outbox_id = plan(db, dealer_id, owner)

    dispatcher.run_once()

    [request] = wechat.calls(TEMPLATE)
    assert request.json["template_id"] == "TPL_MAINTENANCE" and request.json["data"]["car_number2"] == {"value": "粤B12345"}
    assert wechat.calls(CUSTOM) == [] and twilio.requests == []
    sent = row(db, outbox_id)
    assert sent.status == OutboxStatus.sent and sent.channel == Channel.wechat and sent.provider_id.startswith("template:")


def test_a_closed_window_without_a_notice_falls_back_to_sms_in_the_same_attempt(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id)
    outbox_id = plan(db, dealer_id, owner, kind="reminder:insurance", key="insurance:1")  # no notice for insurance

    assert dispatcher.run_once() == 1

    assert wechat.calls(CUSTOM) == [] and wechat.calls(TEMPLATE) == []
    [sms] = twilio.messages
    assert sms.to == PHONE and sms.body == f"【测试丰田4S店】{BODY}\n回T退订"
    sent = row(db, outbox_id)
    assert (sent.status, sent.channel, sent.address, sent.provider_id) == (OutboxStatus.sent, Channel.sms, PHONE, sms.sid)
    assert sent.attempts == 1 and sent.last_error is None


def test_an_owner_without_wechat_gets_an_sms_to_the_phone_on_file_in_e164(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, openid=None, phone="138-0013-8000")
    outbox_id = plan(db, dealer_id, owner)

    dispatcher.run_once()

    assert wechat.requests == []
    [sms] = twilio.messages
    assert sms.to == PHONE
    assert (row(db, outbox_id).channel, row(db, outbox_id).address) == (Channel.sms, PHONE)


def test_an_owner_who_prefers_sms_gets_sms_although_they_follow_the_account(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, preferred=Channel.sms)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=1))
    plan(db, dealer_id, owner)

    dispatcher.run_once()

    assert wechat.calls(CUSTOM) == [] and len(twilio.messages) == 1


def test_an_owner_opted_out_of_wechat_gets_sms_instead(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, wechat_opted_out=True)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=1))
    plan(db, dealer_id, owner)

    dispatcher.run_once()

    assert wechat.calls(CUSTOM) == [] and len(twilio.messages) == 1


def test_an_owner_opted_out_of_sms_without_wechat_is_not_contacted_and_the_row_says_why(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, openid=None, sms_opted_out=True)
    outbox_id = plan(db, dealer_id, owner)

    assert dispatcher.run_once() == 0

    assert wechat.requests == [] and twilio.requests == []
    cancelled = row(db, outbox_id)
    assert cancelled.status == OutboxStatus.cancelled and cancelled.attempts == 0
    assert cancelled.last_error == "no_reachable_channel: wechat_unbound, sms_opted_out"
    assert cancelled.channel is None and cancelled.sent_at is None


def test_a_phone_on_file_that_opted_out_as_another_owners_number_is_not_texted(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    add_owner(db, dealer_id, openid=None, sms_opted_out=True, name="李女士", plate="粤A00001")  # the number's identity, opted out
    owner = add_owner(db, dealer_id, openid=None)  # the same number only as Customer.phone
    outbox_id = plan(db, dealer_id, owner)

    dispatcher.run_once()

    assert twilio.requests == []
    assert row(db, outbox_id).last_error == "no_reachable_channel: wechat_unbound, sms_opted_out"


def test_when_neither_channel_can_carry_it_the_row_fails_naming_both_reasons(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id)
    twilio.unsubscribed.add(PHONE)  # the number texted STOP at Twilio: 21610
    outbox_id = plan(db, dealer_id, owner, kind="reminder:insurance", key="insurance:2")

    dispatcher.run_once()

    failed = row(db, outbox_id)
    assert failed.status == OutboxStatus.failed
    assert failed.last_error == "no_reachable_channel: wechat_window_closed, sms_opted_out"
    assert failed.channel is None, "no address carried it: a retry climbs the ladder again"
    assert twilio.messages == []


# -- failures that may pass -----------------------------------------------------------------


def test_a_503_from_twilio_is_retried_later_with_backoff_and_then_sent_once(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    outbox_id = plan(db, dealer_id, owner)
    twilio.fail_next(503)

    dispatcher.run_once()
    waiting = row(db, outbox_id)
    assert waiting.status == OutboxStatus.pending and waiting.last_error == "twilio_503: 20503"
    assert waiting.not_before > NOW and waiting.channel == Channel.sms
    assert dispatcher.run_once() == 0, "not before its backoff"

    clock.now = waiting.not_before
    dispatcher.run_once()

    [sms] = twilio.messages
    assert len(twilio.message_posts()) == 2
    sent = row(db, outbox_id)
    assert sent.status == OutboxStatus.sent and sent.attempts == 2 and sent.provider_id == sms.sid


def test_a_wechat_outage_is_retried_on_wechat_not_by_sms(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id)
    owner_wrote(db, dealer_id, NOW - timedelta(hours=1))
    outbox_id = plan(db, dealer_id, owner)
    wechat.status_next(503, path=CUSTOM)

    dispatcher.run_once()
    waiting = row(db, outbox_id)
    assert waiting.status == OutboxStatus.pending and waiting.last_error == "wechat_unavailable"
    assert waiting.channel == Channel.wechat and twilio.requests == []

    clock.now = waiting.not_before
    dispatcher.run_once()

    assert len(wechat.calls(CUSTOM)) == 2 and twilio.requests == []
    assert row(db, outbox_id).status == OutboxStatus.sent


def test_giving_up_keeps_the_last_reason(db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock) -> None:
    dispatcher = make_dispatcher(db, clock, policy=DispatchPolicy(max_attempts=2))
    owner = add_owner(db, dealer_id, openid=None)
    outbox_id = plan(db, dealer_id, owner)
    twilio.fail_next(500, times=5)

    for _ in range(3):
        dispatcher.run_once()
        clock.now += timedelta(hours=2)

    failed = row(db, outbox_id)
    assert failed.status == OutboxStatus.failed and failed.attempts == 2
    assert failed.last_error == "twilio_500: 20500" and failed.channel == Channel.sms


def test_an_interrupted_send_is_looked_up_on_the_channel_it_was_claimed_for(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher
) -> None:
    owner = add_owner(db, dealer_id, openid=None)
    outbox_id = plan(db, dealer_id, owner)
    [(message, interrupted)] = dispatcher.claim()  # ... and the dispatcher dies before sending
    assert (message.channel, message.address, interrupted) == (Channel.sms, PHONE, False)
    claimed = row(db, outbox_id)
    assert (claimed.status, claimed.channel, claimed.address) == (OutboxStatus.sending, Channel.sms, PHONE)

    clock.now += DispatchPolicy().stale_after + timedelta(seconds=1)
    dispatcher.run_once()

    lookups = [r for r in twilio.requests if r.method == "GET"]
    assert lookups, "looked up at Twilio before sending"
    assert len(twilio.messages) == 1 and row(db, outbox_id).status == OutboxStatus.sent


def test_rows_with_a_channel_keep_going_where_they_were_addressed(
    db: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock, dispatcher: Dispatcher
) -> None:
    clock.now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 local: a reply still goes
    with db.transaction() as session:
        session.add(Outbox(dealer_id=dealer_id, dedupe_key="reply:1", kind="reply", channel=Channel.sms, address=PHONE,
                           body="好的", not_before=clock.now))

    assert dispatcher.run_once() == 1

    [sms] = twilio.messages
    assert sms.to == PHONE and wechat.requests == []


def test_planner_rows_stay_queued_for_a_dispatcher_without_senders(db: Database, dealer_id: int, clock: Clock) -> None:
    owner = add_owner(db, dealer_id)
    outbox_id = plan(db, dealer_id, owner)

    assert Dispatcher(db=db, senders={}, clock=clock).run_once() == 0

    assert row(db, outbox_id).status == OutboxStatus.pending



def test_a_batch_grown_old_gives_its_untried_rows_back_before_another_dispatcher_takes_them_for_stale(
    db: Database, dealer_id: int, clock: Clock
) -> None:
    class Slow:
        def __init__(self) -> None:
            self.sent: list[int] = []

        def send(self, message: OutboundMessage) -> str:
            time.sleep(0.25)
            self.sent.append(message.outbox_id)
            return f"P{message.outbox_id}"

        def recover(self, message: OutboundMessage) -> str | None:
            return None

    owners = [add_owner(db, dealer_id, openid=None, name=f"车主{i}", plate=f"粤B0000{i}") for i in range(3)]
    ids = [plan(db, dealer_id, owner, key=f"k{owner}") for owner in owners]
    sender = Slow()
    dispatcher = Dispatcher(db=db, senders={Channel.sms: sender}, clock=clock, policy=DispatchPolicy(stale_after=timedelta(seconds=0.4)))

    assert dispatcher.run_once() == 1

    assert sender.sent == ids[:1]
    for given_back in (row(db, i) for i in ids[1:]):
        assert (given_back.status, given_back.attempts, given_back.channel) == (OutboxStatus.pending, 0, None)
    assert dispatcher.run_once() == 1, "taken again at once, one more before the batch is old"
