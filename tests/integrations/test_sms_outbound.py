"""SMS out through the real twilio client against a fake Twilio: retries, lookups before resending, status callbacks."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import Channel, ChannelIdentity, Outbox, OutboxStatus, utcnow
from bot.outbox import AMBIGUOUS, Dispatcher
from integrations.twilio import segments
from integrations.twilio.sender import TwilioSender
from tests.factories import make_customer
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.integrations.sms_fixtures import (
    DEALER_NUMBER,
    OWNER,
    PUBLIC_URL,
    TwilioServer,
    add_sms_account,
)

pytestmark = pytest.mark.db

SERVICE_SID = "MG" + "1" * 32


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def api() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def dealer_id(db: Database, api: FakeTwilioAPI) -> int:
    dealer_id = add_sms_account(db, api_base=api.url)
    with db.transaction() as session:
        from bot.models import Dealer

        customer = make_customer(session, session.get_one(Dealer, dealer_id), phone=OWNER)
        session.add(ChannelIdentity(dealer_id=dealer_id, customer_id=customer.id, channel=Channel.sms, address=OWNER))
    return dealer_id


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dispatcher(db: Database, clock: Clock) -> Dispatcher:
    sender = TwilioSender(db, public_url=PUBLIC_URL, timeout=0.5, clock=clock)
    return Dispatcher(db=db, senders={Channel.sms: sender}, clock=clock)


def queue(db: Database, dealer_id: int, *, kind: str = "reminder:maintenance", body: str = "您的爱车该做保养了。",
          address: str = OWNER, **fields: Any) -> int:
    with db.transaction() as session:
        row = Outbox(
            dealer_id=dealer_id, dedupe_key=f"{kind}:{address}:{body[:20]}:{utcnow().timestamp()}", kind=kind,
            channel=Channel.sms, address=address, body=body, status=OutboxStatus.pending, not_before=utcnow() - timedelta(seconds=1),
            **fields,
        )
        session.add(row)
        session.flush()
        return row.id


def row(db: Database, outbox_id: int) -> Outbox:
    with db.sessions() as session:
        return session.get_one(Outbox, outbox_id)


def test_a_reminder_goes_from_the_dealers_number_with_signature_opt_out_line_and_a_status_callback(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    outbox_id = queue(db, dealer_id)

    assert dispatcher.run_once() == 1

    [sent] = api.messages
    assert sent.to == OWNER and sent.from_ == DEALER_NUMBER
    assert sent.body == "【测试丰田4S店】您的爱车该做保养了。\n回T退订"
    assert sent.status_callback == f"{PUBLIC_URL}/sms/twilio/test/status?o={outbox_id}"
    stored = row(db, outbox_id)
    assert stored.status == OutboxStatus.sent and stored.provider_id == sent.sid


def test_a_reply_carries_the_signature_but_no_opt_out_line(db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher) -> None:
    queue(db, dealer_id, kind="reply", body="好的，已为您预约。")

    dispatcher.run_once()

    assert api.messages[0].body == "【测试丰田4S店】好的，已为您预约。"


def test_a_messaging_service_picks_the_number_when_configured(db: Database, api: FakeTwilioAPI) -> None:
    dealer_id = add_sms_account(db, slug="ms", api_base=api.url, messaging_service_sid=SERVICE_SID)
    queue(db, dealer_id)

    Dispatcher(db=db, senders={Channel.sms: TwilioSender(db, public_url=PUBLIC_URL)}).run_once()

    [sent] = api.messages
    assert sent.messaging_service_sid == SERVICE_SID and sent.form.get("From") is None


def test_a_runaway_template_is_cut_to_the_dealers_segment_cap_keeping_signature_and_opt_out_line(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher
) -> None:
    queue(db, dealer_id, body="尊敬的车主，" + "本次保养项目包括机油、机滤、空滤等。" * 60)

    dispatcher.run_once()

    body = api.messages[0].body
    assert segments.count(body).segments == 3  # the test dealer's cap (the default)
    assert body.startswith("【测试丰田4S店】尊敬的车主") and body.endswith("…\n回T退订")


def test_a_503_is_retried_with_backoff_and_then_succeeds(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, clock: Clock
) -> None:
    outbox_id = queue(db, dealer_id)
    api.fail_next(503)

    dispatcher.run_once()
    first = row(db, outbox_id)
    assert first.status == OutboxStatus.pending and first.attempts == 1 and first.last_error.startswith("twilio_503")
    assert first.not_before > clock.now  # backoff: not again at once
    assert dispatcher.run_once() == 0

    clock.advance(hours=1)
    dispatcher.run_once()

    [sent] = api.messages
    done = row(db, outbox_id)
    assert done.status == OutboxStatus.sent and done.provider_id == sent.sid and done.attempts == 2


def test_a_429_waits_at_least_as_long_as_retry_after_says(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, clock: Clock
) -> None:
    outbox_id = queue(db, dealer_id)
    api.fail_next(429, code=20429, retry_after=900)

    dispatcher.run_once()

    assert row(db, outbox_id).not_before >= clock.now + timedelta(seconds=900)


@pytest.mark.parametrize("code", [21211, 21614])
def test_an_invalid_or_landline_number_is_marked_unreachable_and_not_retried(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, code: int
) -> None:
    outbox_id = queue(db, dealer_id)
    api.fail_next(400, code=code)

    dispatcher.run_once()

    assert row(db, outbox_id).status == OutboxStatus.cancelled
    with db.sessions() as session:
        identity = session.scalars(select(ChannelIdentity).where(ChannelIdentity.address == OWNER)).one()
    assert identity.unreachable and not identity.opted_out


def test_a_timeout_is_looked_up_before_sending_again_so_the_owner_gets_one_sms(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, clock: Clock
) -> None:
    outbox_id = queue(db, dealer_id)
    api.hang_next(1.5, create=True)  # Twilio takes it, but answers after our 0.5 s timeout

    dispatcher.run_once()
    unsure = row(db, outbox_id)
    assert unsure.status == OutboxStatus.pending and unsure.provider_status == AMBIGUOUS

    clock.advance(hours=1)
    dispatcher.run_once()

    [sent] = api.messages
    assert len(api.message_posts()) == 1  # found by the lookup, not created again
    done = row(db, outbox_id)
    assert done.status == OutboxStatus.sent and done.provider_id == sent.sid and done.provider_status is None


def test_a_timeout_before_twilio_took_it_is_sent_after_the_lookup_finds_nothing(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, clock: Clock
) -> None:
    outbox_id = queue(db, dealer_id)
    api.hang_next(1.5, create=False)

    dispatcher.run_once()
    clock.advance(hours=1)
    dispatcher.run_once()

    assert len(api.messages) == 1 and row(db, outbox_id).status == OutboxStatus.sent


def test_a_verification_code_that_expired_while_waiting_is_dropped(db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher) -> None:
    outbox_id = queue(
        db, dealer_id, kind="verification_code", body="【测试】您的验证码是123456",
        data={"expires_at": (utcnow() - timedelta(minutes=1)).isoformat()},
    )

    dispatcher.run_once()

    assert api.messages == [] and row(db, outbox_id).status == OutboxStatus.cancelled


# -- status callbacks -------------------------------------------------------------------------


@pytest.fixture
def twilio(client, dealer_id: int) -> TwilioServer:  # type: ignore[no-untyped-def]
    return TwilioServer(client)


def test_status_callbacks_move_a_row_through_its_states(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    dispatcher.run_once()
    [sent] = api.messages

    seen = []
    for status in ("queued", "sent", "delivered"):
        assert twilio.status(api.status_callback_form(sent, status), outbox_id).status_code == 200
        seen.append((row(db, outbox_id).status, row(db, outbox_id).provider_status))

    assert seen == [(OutboxStatus.sent, "queued"), (OutboxStatus.sent, "sent"), (OutboxStatus.delivered, "delivered")]


def test_a_status_only_moves_forward_when_callbacks_arrive_out_of_order(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    dispatcher.run_once()
    [sent] = api.messages

    for status in ("delivered", "sent", "queued"):
        twilio.status(api.status_callback_form(sent, status), outbox_id)

    final = row(db, outbox_id)
    assert final.status == OutboxStatus.delivered and final.provider_status == "delivered"


def test_undelivered_records_twilios_error_code_and_30006_marks_the_number_unreachable(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    dispatcher.run_once()
    [sent] = api.messages

    twilio.status(api.status_callback_form(sent, "undelivered", error_code=30006), outbox_id)

    failed = row(db, outbox_id)
    assert failed.status == OutboxStatus.failed and failed.last_error == "twilio_30006"
    with db.sessions() as session:
        assert session.scalars(select(ChannelIdentity.unreachable).where(ChannelIdentity.address == OWNER)).one()


def test_a_21610_in_a_callback_opts_the_number_out(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    dispatcher.run_once()
    later = queue(db, dealer_id, body="您的车险快到期了。")

    twilio.status(api.status_callback_form(api.messages[0], "failed", error_code=21610), outbox_id)

    with db.sessions() as session:
        assert session.scalars(select(ChannelIdentity.opted_out).where(ChannelIdentity.address == OWNER)).one()
    assert row(db, later).status == OutboxStatus.cancelled


def test_a_callback_that_beats_the_send_result_is_kept_and_not_overwritten(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    [(message, interrupted)] = dispatcher.claim()  # the row is `sending`, the send not yet recorded
    sid = TwilioSender(db, public_url=PUBLIC_URL).send(message)
    twilio.status(api.status_callback_form(api.message(sid), "delivered"), outbox_id)

    dispatcher._deliver(message, interrupted)  # the send's own result arrives last

    final = row(db, outbox_id)
    assert final.status == OutboxStatus.delivered and final.provider_id == sid


def test_a_callback_with_a_bad_signature_is_refused_and_changes_nothing(
    db: Database, api: FakeTwilioAPI, dealer_id: int, dispatcher: Dispatcher, twilio: TwilioServer
) -> None:
    outbox_id = queue(db, dealer_id)
    dispatcher.run_once()
    form = api.status_callback_form(api.messages[0], "delivered")

    response = twilio.post(form, path=f"/sms/twilio/test/status?o={outbox_id}", signed_url=f"{PUBLIC_URL}/sms/twilio/test/status?o={outbox_id + 1}")

    assert response.status_code == 403
    assert row(db, outbox_id).status == OutboxStatus.sent


def test_a_callback_cannot_touch_another_dealers_row(db: Database, api: FakeTwilioAPI, dealer_id: int, twilio: TwilioServer) -> None:
    other = add_sms_account(db, slug="other", api_base=api.url)
    outbox_id = queue(db, other)

    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    assert twilio.status(form, outbox_id).status_code == 200  # signed by this dealer's Twilio account

    assert row(db, outbox_id).status == OutboxStatus.pending
