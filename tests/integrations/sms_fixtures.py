"""Plays Twilio in tests: a dealer's account, signed webhook posts, TwiML read back.

Signatures come from `tests.fakes.twilio_api.signature`, written from Twilio's documented
algorithm, so the webhook's validation (the twilio library's RequestValidator) is checked
against an independent implementation.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bot.db import Database
from bot.models import Channel, ChannelAccount
from tests.factories import make_dealer
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, inbound_form, signature

PUBLIC_URL = "https://care.example-dealer.cn"  # what Twilio calls; the test client is http://testserver
DEALER_NUMBER = "+8675586001234"
OWNER = "+8613800138000"


def add_sms_account(
    db: Database,
    *,
    slug: str = "test",
    api_base: str | None = None,
    messaging_service_sid: str | None = None,
    dealer_id: int | None = None,
    **config: object,
) -> int:
    """Adds a dealer (or uses `dealer_id`) with a Twilio account; returns the dealer's id."""
    with db.transaction() as session:
        if dealer_id is None:
            dealer_id = make_dealer(session, slug=slug, **config).id
        account_config: dict[str, Any] = {"account_sid": ACCOUNT_SID, "public_url": PUBLIC_URL}
        if messaging_service_sid:
            account_config["messaging_service_sid"] = messaging_service_sid
        else:
            account_config["from"] = DEALER_NUMBER
        if api_base:
            account_config["api_base"] = api_base
        session.add(
            ChannelAccount(dealer_id=dealer_id, channel=Channel.sms, config=account_config, secrets={"auth_token": AUTH_TOKEN})
        )
    from integrations.twilio.webhook import accounts

    accounts.clear()  # a test's new account must not meet the previous test's cached one
    return dealer_id


@dataclass
class TwilioServer:
    """Posts to /sms/twilio/{slug} exactly as Twilio does: form-encoded, signed over the public URL."""

    client: Any
    slug: str = "test"
    auth_token: str = AUTH_TOKEN

    @property
    def webhook_url(self) -> str:
        return f"{PUBLIC_URL}/sms/twilio/{self.slug}"

    def post(
        self,
        form: dict[str, str] | list[tuple[str, str]],
        *,
        path: str | None = None,
        signed_url: str | None = None,
        signed_form: dict[str, str] | list[tuple[str, str]] | None = None,
        header: str | None = "sign",
    ) -> Any:
        """Posts `form`; the signature is over `signed_url`/`signed_form` when given (to forge one)."""
        path = path or f"/sms/twilio/{self.slug}"
        url = signed_url or PUBLIC_URL + path
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if header == "sign":
            headers["X-Twilio-Signature"] = signature(self.auth_token, url, _params(signed_form or form))
        elif header is not None:
            headers["X-Twilio-Signature"] = header
        return self.client.post(path, content=urlencode(form).encode(), headers=headers)

    def sms(self, body: str, *, from_: str = OWNER, sid: str | None = None, **extra: Any) -> Any:
        return self.post(inbound_form(to=DEALER_NUMBER, from_=from_, body=body, sid=sid, **extra))

    def status(self, form: dict[str, str], outbox_id: int | None) -> Any:
        path = f"/sms/twilio/{self.slug}/status" + (f"?o={outbox_id}" if outbox_id is not None else "")
        return self.post(form, path=path)


def _params(form: dict[str, str] | list[tuple[str, str]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in form.items() if isinstance(form, dict) else form:
        params.setdefault(key, []).append(value)
    return params


def twiml_messages(response: Any) -> list[str]:
    """The bodies of the <Message> elements of a TwiML answer."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return [element.text or "" for element in root.iter("Message")]

