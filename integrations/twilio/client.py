"""A dealer's Twilio account, and the twilio client that talks to it.

`ChannelAccount(channel=sms)` holds, as `dealercare dealer twilio` stores it:

    config:  {"account_sid": "AC...",
              "from": "+8613800000000"  or  "messaging_service_sid": "MG...",
              "public_url": "https://..."    # optional: else DEALERCARE_PUBLIC_URL
              "api_base": "http://127.0.0.1:port"}   # tests and the demo's fake Twilio only
    secrets: {"auth_token": "..."}

The twilio library builds every URL on https://api.twilio.com. `RoutedHttpClient` is twilio's
own HTTP client with two changes: it sends those requests to `api_base` when one is configured
(so tests use the real client against a fake server on loopback), and it keeps each thread's
last response headers, because `TwilioRestException` drops Retry-After.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.models import Channel, ChannelAccount, Dealer

DEFAULT_TIMEOUT = 10.0
TWILIO_API = "https://api.twilio.com"


class TwilioNotConfigured(LookupError):
    """The dealer has no enabled Twilio account."""


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    dealer_id: int
    dealer_slug: str
    dealer_name: str
    dealer_phone: str
    language: str  # the dealer's: the default language of its SMS texts
    account_sid: str
    auth_token: str
    from_number: str | None
    messaging_service_sid: str | None
    public_url: str | None  # the account's own; None means the app's DEALERCARE_PUBLIC_URL
    api_base: str | None
    signature: str  # 【店名】
    opt_out_line: str
    max_segments: int

    def base_url(self, app_public_url: str) -> str:
        return (self.public_url or app_public_url).rstrip("/")

    def webhook_url(self, app_public_url: str) -> str:
        return f"{self.base_url(app_public_url)}/sms/twilio/{self.dealer_slug}"

    def status_url(self, app_public_url: str) -> str:
        return f"{self.webhook_url(app_public_url)}/status"


def default_opt_out_line(language: str) -> str:
    return "Reply STOP to opt out" if language == "en" else "回T退订"


def load_account(db: Database, *, dealer_id: int | None = None, slug: str | None = None) -> TwilioAccount:
    """The dealer's enabled Twilio account, by id or slug; TwilioNotConfigured when there is none."""
    query = select(
        Dealer.id, Dealer.slug, Dealer.name, Dealer.phone, Dealer.language, Dealer.config.label("dealer_config"),
        ChannelAccount.config, ChannelAccount.secrets,
    ).join(ChannelAccount, ChannelAccount.dealer_id == Dealer.id)
    query = query.where(ChannelAccount.channel == Channel.sms, ChannelAccount.enabled.is_(True))
    query = query.where(Dealer.id == dealer_id) if dealer_id is not None else query.where(Dealer.slug == slug)
    with db.transaction() as session:
        row = session.execute(query).first()
    if row is None:
        raise TwilioNotConfigured("no Twilio account here")
    config, secrets = row.config or {}, row.secrets or {}
    if not config.get("account_sid") or not secrets.get("auth_token"):
        raise TwilioNotConfigured("this Twilio account has no Account SID or auth token")
    dealer_config = DealerConfig.model_validate(row.dealer_config or {})
    return TwilioAccount(
        dealer_id=row.id,
        dealer_slug=row.slug,
        dealer_name=row.name,
        dealer_phone=row.phone,
        language=row.language,
        account_sid=str(config["account_sid"]),
        auth_token=str(secrets["auth_token"]),
        from_number=config.get("from") or None,
        messaging_service_sid=config.get("messaging_service_sid") or None,
        public_url=config.get("public_url") or None,
        api_base=config.get("api_base") or None,
        signature=dealer_config.sms_signature or f"【{row.name}】",
        opt_out_line=dealer_config.sms_opt_out_line or default_opt_out_line(row.language),
        max_segments=dealer_config.sms_max_segments,
    )


class RoutedHttpClient(TwilioHttpClient):
    """twilio's HTTP client, sent to `api_base` instead of Twilio when configured."""

    def __init__(self, api_base: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/") if api_base else None
        self._local = threading.local()

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._local.headers = {}
        response = super().request(
            method, self.route(url), params=params, data=data, headers=headers, auth=auth, timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.headers = dict(response.headers or {})
        return response

    def route(self, url: str) -> str:
        """Twilio's URL, or the same path on `api_base`; never any other host."""
        if self.api_base is None:
            return url
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            raise ValueError(f"refusing to send Twilio credentials to {parts.hostname}")
        return self.api_base + parts.path + (f"?{parts.query}" if parts.query else "")

    def last_headers(self) -> Mapping[str, Any]:
        """This thread's last response headers (Retry-After after a 429)."""
        return getattr(self._local, "headers", {})


def twilio_client(account: TwilioAccount, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[Client, RoutedHttpClient]:
    http = RoutedHttpClient(account.api_base, timeout=timeout)
    return Client(account.account_sid, account.auth_token, http_client=http), http
