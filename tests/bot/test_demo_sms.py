"""The demo sends SMS for real, to a fake Twilio: the demo dealer's account, the app starting the
fake (DEALERCARE_FAKE_TWILIO_PORT, as `make run` sets it), and what a developer sees of it.

Sending goes through the same path as production (outbox -> Dispatcher -> TwilioSender -> the
twilio library); only the account's api_base says where Twilio is.
"""
from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.app import create_app
from bot.db import Database
from bot.demo import DEMO_FAKE_TWILIO_PORT, DEMO_TWILIO
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Customer,
    Dealer,
    Outbox,
    OutboxStatus,
    utcnow,
)
from bot.outbox import Dispatcher
from bot.settings import Settings, SettingsError, load_settings
from integrations.twilio.sender import TwilioSender
from tests.fakes.twilio_api import DEMO_MESSAGES_PATH, FakeTwilioAPI

pytestmark = pytest.mark.db

PUBLIC_URL = "http://127.0.0.1:8000"
MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def point_demo_twilio_at(db: Database, dealer: Dealer, api_base: str) -> None:
    """The demo account names port 8001; a test's fake listens on a free port instead."""
    with db.transaction() as session:
        account = session.scalars(
            select(ChannelAccount).where(ChannelAccount.dealer_id == dealer.id, ChannelAccount.channel == Channel.sms)
        ).one()
        account.config = {**account.config, "api_base": api_base}  # a new dict, so the JSON change is saved


def an_sms_owner(db: Database, dealer: Dealer) -> str:
    """A Chinese-speaking demo owner's mobile, as their sms identity holds it (E.164)."""
    with db.transaction() as session:
        return session.scalars(
            select(ChannelIdentity.address)
            .join(Customer, Customer.id == ChannelIdentity.customer_id)
            .where(ChannelIdentity.dealer_id == dealer.id, ChannelIdentity.channel == Channel.sms, Customer.language == "zh")
            .order_by(ChannelIdentity.id)
            .limit(1)
        ).one()


def queue_reminder(db: Database, dealer: Dealer, phone: str, body: str = "您的爱车该做保养了。") -> int:
    with db.transaction() as session:
        row = Outbox(
            dealer_id=dealer.id, dedupe_key=f"reminder:maintenance:{phone}", kind="reminder:maintenance",
            channel=Channel.sms, address=phone, body=body, status=OutboxStatus.pending,
            not_before=utcnow() - timedelta(seconds=1),
        )
        session.add(row)
        session.flush()
        return row.id


def outbox_row(db: Database, outbox_id: int) -> Outbox:
    with db.sessions() as session:
        return session.get_one(Outbox, outbox_id)


@pytest.fixture
def api(db: Database, demo: Dealer) -> Iterator[FakeTwilioAPI]:
    """A fake Twilio on a free port, with the demo dealer's account pointed at it."""
    with FakeTwilioAPI() as fake:
        point_demo_twilio_at(db, demo, fake.url)
        yield fake


def demo_settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


# -- the demo dealer's texts reach the fake ---------------------------------------------------


def test_a_demo_reminder_goes_through_the_twilio_client_to_the_fake_with_the_stores_signature(
    db: Database, demo: Dealer, api: FakeTwilioAPI
) -> None:
    phone = an_sms_owner(db, demo)
    outbox_id = queue_reminder(db, demo, phone)
    dispatcher = Dispatcher(db=db, senders={Channel.sms: TwilioSender(db, public_url=PUBLIC_URL)})

    assert dispatcher.run_once() == 1

    [sent] = api.messages  # the fake took the demo's SID and token (else 401, and nothing here)
    assert sent.to == phone and re.fullmatch(r"\+861[3-9]\d{9}", sent.to)
    assert sent.from_ == DEMO_TWILIO["from"]
    assert sent.body == "【穗安汽车】您的爱车该做保养了。\n回T退订"  # the demo's sms_signature, the opt-out line
    assert sent.status_callback == f"{PUBLIC_URL}/sms/twilio/demo/status?o={outbox_id}"
    stored = outbox_row(db, outbox_id)
    assert stored.status == OutboxStatus.sent and stored.provider_id == sent.sid


def test_the_fake_lists_what_the_demo_sent_for_a_developer_to_read(
    db: Database, demo: Dealer, api: FakeTwilioAPI
) -> None:
    phone = an_sms_owner(db, demo)
    queue_reminder(db, demo, phone)
    Dispatcher(db=db, senders={Channel.sms: TwilioSender(db, public_url=PUBLIC_URL)}).run_once()
    [sent] = api.messages

    listed = get_json(api.url + DEMO_MESSAGES_PATH)  # no credentials: it is a loopback-only view

    assert listed == [
        {
            "sid": sent.sid,
            "to": phone,
            "from": DEMO_TWILIO["from"],
            "body": sent.body,
            "status": "queued",
            "date_created": sent.date_created.isoformat(),
        }
    ]


def test_the_demo_message_list_is_read_only() -> None:
    with FakeTwilioAPI() as api:
        request = urllib.request.Request(api.url + DEMO_MESSAGES_PATH, data=b"Body=x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)

        assert refused.value.code == 405 and api.messages == []


# -- the app starts the fake when DEALERCARE_FAKE_TWILIO_PORT is set -------------------------


def test_the_app_starts_the_fake_on_the_configured_port_and_stops_it_on_shutdown(
    settings: Settings, db: Database, nlu: Any
) -> None:
    port = free_port()
    app = create_app(demo_settings(settings, fake_twilio_port=port), db=db, nlu=nlu)

    with TestClient(app):
        assert app.state.fake_twilio.url == f"http://127.0.0.1:{port}"
        assert get_json(f"http://127.0.0.1:{port}{DEMO_MESSAGES_PATH}") == []

    with pytest.raises(urllib.error.URLError):
        get_json(f"http://127.0.0.1:{port}{DEMO_MESSAGES_PATH}")


def test_without_the_setting_the_app_starts_no_fake(settings: Settings, db: Database, nlu: Any) -> None:
    app = create_app(settings, db=db, nlu=nlu)

    with TestClient(app):
        assert settings.fake_twilio_port is None and app.state.fake_twilio is None


def test_a_second_app_process_finding_the_port_taken_warns_and_serves_without_its_own_fake(
    settings: Settings, db: Database, nlu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # as with `dealercare serve --workers 2`: the first process has the port
    with FakeTwilioAPI(port=free_port()) as first:
        port = int(first.url.rsplit(":", 1)[1])
        app = create_app(demo_settings(settings, fake_twilio_port=port), db=db, nlu=nlu)

        with caplog.at_level("WARNING", logger="integrations.twilio.fake_api"), TestClient(app) as client:
            assert app.state.fake_twilio is None
            assert client.get("/healthz").status_code == 200
            assert get_json(first.url + DEMO_MESSAGES_PATH) == []  # the first one still answers

    assert any("fake Twilio API not started" in record.getMessage() for record in caplog.records)


def test_under_make_runs_settings_a_queued_demo_sms_reaches_the_fake_by_itself(
    settings: Settings, db: Database, demo: Dealer, nlu: Any
) -> None:
    # what `make run` does: the fake inside the app, the embedded worker dispatching the outbox
    port = free_port()
    point_demo_twilio_at(db, demo, f"http://127.0.0.1:{port}")
    phone = an_sms_owner(db, demo)
    outbox_id = queue_reminder(db, demo, phone)
    app = create_app(demo_settings(settings, fake_twilio_port=port, embedded_worker=True), db=db, nlu=nlu)

    with TestClient(app):
        fake: FakeTwilioAPI = app.state.fake_twilio
        deadline = time.monotonic() + 10
        while not fake.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        listed = get_json(fake.url + DEMO_MESSAGES_PATH)

    assert [(m["to"], m["body"]) for m in listed] == [(phone, "【穗安汽车】您的爱车该做保养了。\n回T退订")]
    assert outbox_row(db, outbox_id).provider_id == listed[0]["sid"]


# -- where the fake may run --------------------------------------------------------------------


def test_production_refuses_a_fake_twilio(database_url: str) -> None:
    production = {"database_url": database_url, "env": "production", "secret_key": "a-real-production-secret-0123"}

    with pytest.raises(SettingsError, match="DEALERCARE_FAKE_TWILIO_PORT"):
        load_settings(**production, fake_twilio_port=DEMO_FAKE_TWILIO_PORT)
    assert load_settings(**production).fake_twilio_port is None


def test_an_empty_port_variable_turns_the_fake_off(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    # `DEALERCARE_FAKE_TWILIO_PORT= make run`: make's ?= keeps the empty value and exports it
    monkeypatch.setenv("DEALERCARE_FAKE_TWILIO_PORT", "")

    assert load_settings(database_url=database_url).fake_twilio_port is None


def test_make_run_starts_the_fake_on_the_port_the_demo_account_names() -> None:
    assert DEMO_TWILIO["api_base"] == f"http://127.0.0.1:{DEMO_FAKE_TWILIO_PORT}"
    assert re.search(rf"^run: export DEALERCARE_FAKE_TWILIO_PORT \?= {DEMO_FAKE_TWILIO_PORT}$", MAKEFILE.read_text(), re.MULTILINE)
