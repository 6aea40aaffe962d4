"""The outbox's way out by SMS: `twilio.rest.Client.messages.create`, exactly once if at all possible.

Creating a message is not idempotent at Twilio: a retry after a timeout sends (and bills) twice.
So the outbox row is committed before the call (bot/outbox.py), and a send whose result is
unknown (a read timeout, a dropped connection, a crash mid-call) is never simply repeated: it
fails as `ambiguous`, and the dispatcher's next attempt calls `recover` first, which looks the
message up at Twilio (the status callback may already have told us its sid; otherwise the list
of messages to that number since the row was created, matched by body) and only when it is not
there sends again.

Errors: 429 (honouring Retry-After) and 5xx are retried by the dispatcher with backoff and
jitter; 21610 (the recipient replied STOP at Twilio) opts the number out; 21211 and 21614
(invalid or not a mobile number) mark it unreachable; other 4xx fail the row, since repeating
the same request cannot help.

Just before sending, the row is checked against the opt-out truth (bot/optout.py): a reminder
queued before the owner texted 退订 is cancelled, not sent.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import requests
from sqlalchemy import select
from twilio.base.exceptions import TwilioException, TwilioRestException

from bot import optout
from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, Outbox, utcnow
from bot.outbox import SendError
from bot.settings import get_settings
from integrations.twilio import segments
from integrations.twilio.client import (
    DEFAULT_TIMEOUT,
    RoutedHttpClient,
    TwilioAccount,
    TwilioNotConfigured,
    load_account,
    twilio_client,
)

log = logging.getLogger(__name__)

UNSUBSCRIBED = 21610  # Attempt to send to unsubscribed recipient
INVALID_NUMBER = 21211  # Invalid 'To' Phone Number
NOT_MOBILE = 21614  # 'To' number is not a valid mobile number
LANDLINE_OR_UNREACHABLE = 30006  # (a delivery error) landline or unreachable carrier
UNREACHABLE_CODES = frozenset({INVALID_NUMBER, NOT_MOBILE, LANDLINE_OR_UNREACHABLE})
# conversational texts: no opt-out line (a care or marketing text always carries one)
CONVERSATIONAL = frozenset({"reply", "keyword", "staff_reply", "ticket_result", "verification_code"})
# how far back `recover` looks at Twilio for a message it may have sent already
LOOKUP_LIMIT = 50


class TwilioSender:
    """The Sender (bot/outbox.py) for outbox rows of channel sms."""

    def __init__(
        self,
        db: Database,
        *,
        public_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.public_url = public_url
        self.timeout = timeout
        self.clock = clock
        self._clients: dict[int, tuple[TwilioAccount, object, RoutedHttpClient]] = {}
        self._lock = threading.Lock()

    def _client(self, dealer_id: int) -> tuple[TwilioAccount, object, RoutedHttpClient]:
        """The dealer's account and client, kept while the account is unchanged (and its connections)."""
        try:
            account = load_account(self.db, dealer_id=dealer_id)
        except TwilioNotConfigured as exc:
            raise SendError("sms_not_configured", retry=False) from exc
        with self._lock:
            cached = self._clients.get(dealer_id)
            if cached is None or cached[0] != account:
                client, http = twilio_client(account, timeout=self.timeout)
                cached = self._clients[dealer_id] = (account, client, http)
            return cached

    def send(self, message: OutboundMessage) -> str:
        if message.channel != Channel.sms:
            raise SendError("sms_wrong_channel", retry=False)
        if not message.address:
            raise SendError("sms_no_number", retry=False)
        self._check_allowed(message)
        account, client, http = self._client(message.dealer_id)
        body = compose(account, message.text, message.kind)
        params: dict[str, str] = {"to": message.address, "body": body, "status_callback": self._callback(account, message)}
        if account.messaging_service_sid:
            params["messaging_service_sid"] = account.messaging_service_sid
        elif account.from_number:
            params["from_"] = account.from_number
        else:
            raise SendError("sms_no_sender_number", retry=False)
        try:
            created = client.messages.create(**params)  # type: ignore[attr-defined]
        except TwilioRestException as exc:
            raise self._error(message, exc, http) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise SendError("sms_connect_timeout") from exc  # never reached Twilio: plainly retried
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            # the request may have reached Twilio: look before sending again
            raise SendError(f"sms_ambiguous: {type(exc).__name__}", ambiguous=True) from exc
        return str(created.sid)

    def recover(self, message: OutboundMessage) -> str | None:
        """The sid of this row's message if an earlier, interrupted attempt did create it."""
        with self.db.transaction() as session:
            row = session.execute(select(Outbox.provider_id, Outbox.created_at).where(Outbox.id == message.outbox_id)).one()
        if row.provider_id:
            return str(row.provider_id)  # a status callback told us already
        account, client, _ = self._client(message.dealer_id)
        body = compose(account, message.text, message.kind)
        since = row.created_at - timedelta(minutes=1)  # clocks differ a little
        try:
            found = client.messages.list(to=message.address, limit=LOOKUP_LIMIT)  # type: ignore[attr-defined]
        except (TwilioException, requests.exceptions.RequestException) as exc:
            # (a failed list page raises a bare TwilioException) not knowing is not a reason to send twice: try the lookup again later
            raise SendError(f"sms_lookup_failed: {exc}", ambiguous=True) from exc
        for sent in found:
            if sent.body == body and (sent.date_created is None or sent.date_created >= since):
                log.info("interrupted SMS was sent after all", extra={"outbox_id": message.outbox_id, "sid": sent.sid})
                return str(sent.sid)
        return None

    def _check_allowed(self, message: OutboundMessage) -> None:
        expires = message.data.get("expires_at")
        if expires and datetime.fromisoformat(str(expires)) <= self.clock():
            raise SendError("sms_expired", retry=False, cancel=True)  # a stale code helps no one
        with self.db.transaction() as session:
            reason = optout.blocked(
                session, dealer_id=message.dealer_id, channel=Channel.sms, address=message.address, kind=message.kind
            )
        if reason is not None:
            raise SendError(reason, retry=False, cancel=True)

    def _callback(self, account: TwilioAccount, message: OutboundMessage) -> str:
        # the row's id rides in the URL (which Twilio signs): a callback that comes before the
        # send's own result is committed still finds its row
        public_url = self.public_url or get_settings().public_url
        return f"{account.status_url(public_url)}?o={message.outbox_id}"

    def _error(self, message: OutboundMessage, exc: TwilioRestException, http: RoutedHttpClient) -> SendError:
        code, status = exc.code, exc.status
        if code == UNSUBSCRIBED:
            self._mark(message, unreachable=False)
            return SendError(optout.OPTED_OUT, retry=False, cancel=True)
        if code in UNREACHABLE_CODES:
            self._mark(message, unreachable=True)
            return SendError(f"{optout.UNREACHABLE}: twilio {code}", retry=False, cancel=True)
        if status == 429:
            return SendError(f"twilio_429: {code}", retry_after=_retry_after(http))
        if status >= 500:
            return SendError(f"twilio_{status}: {code}", retry_after=_retry_after(http))
        return SendError(f"twilio_{status}: {code} {exc.msg}"[:300], retry=False)

    def _mark(self, message: OutboundMessage, *, unreachable: bool) -> None:
        now = self.clock()
        with self.db.transaction() as session:
            if unreachable:
                optout.set_unreachable(session, dealer_id=message.dealer_id, channel=Channel.sms, address=message.address, now=now)
            else:
                optout.set_opted_out(
                    session, dealer_id=message.dealer_id, channel=Channel.sms, address=message.address, opted_out=True, now=now
                )


def compose(account: TwilioAccount, text: str, kind: str) -> str:
    """The SMS as the owner reads it: 【签名】, the text, and for care and marketing the opt-out line;
    cut to the dealer's segment cap, never losing the signature or the opt-out line."""
    prefix = "" if text.startswith("【") else account.signature
    suffix = "" if kind in CONVERSATIONAL else "\n" + account.opt_out_line
    return segments.fit(text, account.max_segments, prefix=prefix, suffix=suffix)


def _retry_after(http: RoutedHttpClient) -> float | None:
    value = {k.lower(): v for k, v in http.last_headers().items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Twilio; the dispatcher's backoff applies
