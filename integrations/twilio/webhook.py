"""Twilio's webhooks: `POST /sms/twilio/{dealer}` (an owner's SMS) and `.../status` (delivery).

Twilio does not retry an SMS webhook that failed or timed out: a lost answer loses the owner's
message. So after the checks the message is stored before anything else, and the answer is 200
whatever happens next. The checks, in order: a 64 KB body cap (413), then the signature (403):
`X-Twilio-Signature` over the URL Twilio called, rebuilt from the configured public URL (the
app behind a proxy sees another scheme and host), and the form, every repeated key included. A
missing header is a 403, never a 500. A request with a new body under an old signature fails the
signature, so nothing is stored for it.

The answer is TwiML: the replies as <Message> elements when the turn finishes within the
deadline (`app.state.sms_deadline`, else the setting, default 8 s of Twilio's 15), else an
empty <Response/> and the dispatcher sends them through the REST API after PASSIVE_GRACE.

Before any NLU the channel's own keywords are answered (integrations/twilio/keywords.py):
退订 / STOP opt the number out, confirmed once, then silence: an opted-out number's messages are
stored and shown to staff, and no bot turn runs for them until 订阅 / START. HELP gets the
dealer's name and phone. A picture with no words is acknowledged and offered to staff.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot import conversation_status, optout
from bot.background import BackgroundTurns
from bot.db import Database
from bot.messages import InboundMessage, Reply
from bot.models import (
    Channel,
    Customer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    utcnow,
)
from bot.outbound import add_reply
from bot.passive import mark_passive_sent
from bot.pipeline import Pipeline, handle_without_turn
from bot.webhooks import Refused, read_capped
from integrations.twilio import keywords, texts
from integrations.twilio.client import TwilioAccount, TwilioNotConfigured, load_account
from integrations.twilio.inbound import FormParams, Unreadable, read_form
from integrations.twilio.keywords import Command, Keyword
from integrations.twilio.sender import UNREACHABLE_CODES, UNSUBSCRIBED, compose

log = logging.getLogger(__name__)
router = APIRouter(tags=["sms"])

DEFAULT_DEADLINE = 8.0
SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
ACCOUNT_TTL = 10.0  # seconds an account is kept per process: a changed auth token applies within it

_turns = BackgroundTurns("sms-turn")
wait_for_turns = _turns.wait


# -- routes ------------------------------------------------------------------------------------


@router.post("/sms/twilio/{dealer}", include_in_schema=False)
async def receive(dealer: str, request: Request) -> Response:
    """Receives one SMS/MMS; answers TwiML with the replies, or empty TwiML, always with 200."""
    db: Database = request.app.state.db
    pipeline: Pipeline = request.app.state.pipeline
    try:
        account = await anyio.to_thread.run_sync(accounts.get, db, dealer)
        form = await _checked_form(request, account, f"/sms/twilio/{dealer}")
    except Refused as refused:
        return _refusal(refused, dealer)
    except Exception:
        log.exception("sms request could not be checked", extra={"dealer": dealer})
        return PlainTextResponse("temporarily unavailable", status_code=503)

    parsed = read_form(account.dealer_id, form)
    if isinstance(parsed, Unreadable):
        await anyio.to_thread.run_sync(store_dead_letter, db, account, form, parsed)
        return _twiml(EMPTY_TWIML)
    try:
        future = await _turns.within(_deadline(request), handle, db, pipeline, account, parsed)
        if future is None:
            log.info("sms turn is slow: answered empty TwiML, the dispatcher sends the reply", extra={"dealer_id": account.dealer_id})
            return _twiml(EMPTY_TWIML)
        replies = future.result()
        ids = [r.message_id for r in replies if r.message_id is not None]
        if not ids or not await anyio.to_thread.run_sync(lambda: mark_passive_sent(db, ids, channel=Channel.sms)):
            return _twiml(EMPTY_TWIML)  # nothing to say, or the dispatcher has the rows already
    except Exception:
        log.exception("sms message failed", extra={"dealer_id": account.dealer_id})
        await anyio.to_thread.run_sync(_keep_somehow, pipeline, parsed)
        return _twiml(EMPTY_TWIML)
    response = MessagingResponse()
    for reply in replies:
        response.message(compose(account, reply.as_plain_text(), "reply"))
    return _twiml(str(response))


@router.post("/sms/twilio/{dealer}/status", include_in_schema=False)
async def status_callback(dealer: str, request: Request) -> Response:
    """Records a delivery status on its outbox row; a status only ever moves forward."""
    db: Database = request.app.state.db
    try:
        account = await anyio.to_thread.run_sync(accounts.get, db, dealer)
        form = await _checked_form(request, account, f"/sms/twilio/{dealer}/status")
    except Refused as refused:
        return _refusal(refused, dealer)
    except Exception:
        log.exception("sms status callback could not be checked", extra={"dealer": dealer})
        return PlainTextResponse("temporarily unavailable", status_code=503)  # Twilio retries callbacks
    outbox_id = request.query_params.get("o", "")
    await anyio.to_thread.run_sync(
        record_status,
        db,
        account.dealer_id,
        int(outbox_id) if outbox_id.isdigit() else None,
        form.first("MessageSid") or form.first("SmsSid"),
        (form.first("MessageStatus") or form.first("SmsStatus")).lower(),
        form.first("ErrorCode"),
    )
    return Response(status_code=200)


def _refusal(refused: Refused, dealer: str) -> PlainTextResponse:
    log.warning("sms request refused: %s", refused.reason, extra={"dealer": dealer, "status": refused.status})
    return PlainTextResponse(refused.reason, status_code=refused.status)


def _twiml(xml: str) -> Response:
    return Response(content=xml, media_type="application/xml")


def _deadline(request: Request) -> float:
    value = getattr(request.app.state, "sms_deadline", None)
    if value is None:
        value = getattr(request.app.state.settings, "sms_deadline", None)
    return float(value) if value is not None else DEFAULT_DEADLINE


# -- checks -------------------------------------------------------------------------------------


class AccountCache:
    """Each dealer's Twilio account for a few seconds: every webhook needs its auth token."""

    def __init__(self, ttl: float = ACCOUNT_TTL) -> None:
        self.ttl = ttl
        self._accounts: dict[str, tuple[float, TwilioAccount]] = {}
        self._lock = threading.Lock()

    def get(self, db: Database, slug: str) -> TwilioAccount:
        """The dealer's account; Refused(404) when it has none."""
        now = time.monotonic()
        with self._lock:
            cached = self._accounts.get(slug)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            account = load_account(db, slug=slug)
        except TwilioNotConfigured as exc:
            raise Refused(404, "no Twilio account here") from exc
        with self._lock:
            self._accounts[slug] = (now, account)
        return account

    def clear(self) -> None:
        with self._lock:
            self._accounts.clear()


accounts = AccountCache()


async def _checked_form(request: Request, account: TwilioAccount, path: str) -> FormParams:
    """The form, once its signature checks out against the public URL Twilio called."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise Refused(403, f"missing {SIGNATURE_HEADER}")  # the validator would raise on None
    body = await read_capped(request)
    form = FormParams.parse(body)
    url = account.base_url(request.app.state.settings.public_url) + path
    if request.url.query:
        url += "?" + request.url.query
    if not RequestValidator(account.auth_token).validate(url, form, signature):
        raise Refused(403, "the Twilio signature does not match")
    return form


# -- handling (worker threads) -------------------------------------------------------------------


def handle(db: Database, pipeline: Pipeline, account: TwilioAccount, inbound: InboundMessage) -> list[Reply]:
    """Stores the message and computes its replies: a keyword's answer, a bot turn, or silence."""
    word = keywords.keyword(inbound.text, inbound.payload.get("opt_out_type"))  # type: ignore[arg-type]
    with db.transaction() as session:
        opted_out = optout.opted_out(session, dealer_id=account.dealer_id, channel=Channel.sms, address=inbound.address)
    if word is not None and word.command == Command.opt_in and not opted_out:
        word = None  # YES / 开通 from a subscribed number answers the conversation, not the carrier
    if word is None and inbound.kind == "text" and not opted_out:
        return pipeline.handle_inbound(inbound)
    message_id, conversation_id, status = pipeline.store(inbound)
    if status == MessageStatus.received and conversation_id is not None:
        _handle_without_turn(db, account, inbound, word, message_id, conversation_id)
    return pipeline.replies_to(message_id)


def _handle_without_turn(
    db: Database, account: TwilioAccount, inbound: InboundMessage, word: Keyword | None, message_id: int, conversation_id: int
) -> None:
    """Marks a message no bot turn reads as handled, with its fixed reply if it gets one."""
    now = utcnow()
    with db.transaction() as session:
        conversation, marked = handle_without_turn(
            session, conversation_id, message_id, now, intent=word.command.value if word else None
        )
        if not marked:
            return  # a turn handled it meanwhile
        # staff see every message here in the console, answered or not
        conversation_status.record_event(
            session=session, conversation=conversation, kind="message", actor="owner", data={"message_id": message_id}
        )
        key = _fixed_reply(session, account, inbound, word, conversation, now)
        if key is None:
            return
        lang = word.lang if word is not None else _language(session, conversation.customer_id, account)
        body = texts.text(key, lang, dealer=account.dealer_name, phone=account.dealer_phone or "")
        # "keyword" rows go even to an opted-out number: the confirmation is the one text it gets
        add_reply(session, conversation, Channel.sms, inbound.address, message_id, body, now, kind="keyword" if word else "reply")


def _fixed_reply(
    session: Any, account: TwilioAccount, inbound: InboundMessage, word: Keyword | None, conversation: Any, now: datetime
) -> str | None:
    """Carries out a keyword; returns the key of the text to answer with, if any."""
    where = {"dealer_id": account.dealer_id, "channel": Channel.sms, "address": inbound.address}
    if word is None:
        # a picture with no words (an opted-out number's messages get no answer at all)
        handed_off = conversation.status in conversation_status.HANDED_OFF
        is_opted_out = optout.opted_out(session, **where)
        return "media_received" if inbound.kind == "media" and not handed_off and not is_opted_out else None
    if word.command == Command.help:
        return "help"
    changed = optout.set_opted_out(session, **where, opted_out=word.command == Command.opt_out, now=now)
    if changed:
        log.info("sms number opted %s", "out" if word.command == Command.opt_out else "in", extra={"dealer_id": account.dealer_id})
    return word.command.value if changed else None  # a second STOP: silence


def _language(session: Any, customer_id: int, account: TwilioAccount) -> str:
    return session.scalar(select(Customer.language).where(Customer.id == customer_id)) or account.language


def store_dead_letter(db: Database, account: TwilioAccount, form: FormParams, parsed: Unreadable) -> None:
    """Keeps a signed form that is not a message we can file, for staff."""
    log.warning("sms message kept as a dead letter: %s", parsed.reason, extra={"dealer_id": account.dealer_id})
    try:
        with db.transaction() as session:
            session.execute(
                insert(Message).values(
                    dealer_id=account.dealer_id,
                    conversation_id=None,
                    channel=Channel.sms,
                    channel_message_id=parsed.message_sid,
                    direction=Direction.inbound,
                    status=MessageStatus.dead,
                    address=parsed.address[:128],
                    kind="unparsed",
                    text=form.first("Body"),
                    payload={"form": {k: v for k, v in form.items() if k != "AccountSid"}, "reason": parsed.reason},
                    sender="owner",
                    error=parsed.reason,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        pass  # the same MessageSid again: kept already


def _keep_somehow(pipeline: Pipeline, inbound: InboundMessage) -> None:
    """After an unexpected error: makes sure the message is stored (idempotent)."""
    try:
        pipeline.store(inbound)
    except Exception:
        log.exception("could not store the failed sms message", extra={"dealer_id": inbound.dealer_id})


# -- delivery status ----------------------------------------------------------------------------

# Twilio's message states in the order they happen; callbacks arrive out of order, and a status
# only ever moves forward. The final ones share a rank: the first to arrive stands.
RANK = {
    "accepted": 1, "scheduled": 1, "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "canceled": 4,
    "read": 5,
}
OUTBOX_STATUS = {
    "delivered": OutboxStatus.delivered,
    "read": OutboxStatus.delivered,
    "undelivered": OutboxStatus.failed,
    "failed": OutboxStatus.failed,
    "canceled": OutboxStatus.cancelled,
}


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    recorded: bool
    reason: str = ""


def record_status(
    db: Database, dealer_id: int, outbox_id: int | None, sid: str, status: str, error_code: str
) -> StatusUpdate:
    """Moves the outbox row forward to Twilio's status; opts out or marks unreachable on their codes."""
    rank = RANK.get(status)
    if rank is None:
        return StatusUpdate(False, f"unknown status {status!r}")
    now = utcnow()
    with db.transaction() as session:
        query = select(Outbox).where(Outbox.dealer_id == dealer_id, Outbox.channel == Channel.sms).with_for_update()
        if outbox_id is not None:
            query = query.where(Outbox.id == outbox_id)
        elif sid:
            query = query.where(Outbox.provider_id == sid)
        else:
            return StatusUpdate(False, "no message named")
        row = session.scalars(query).first()
        if row is None or (sid and row.provider_id and row.provider_id != sid):
            log.warning("sms status callback for an unknown message", extra={"dealer_id": dealer_id, "sid": sid})
            return StatusUpdate(False, "unknown message")
        if RANK.get(row.provider_status or "", 0) >= rank:
            return StatusUpdate(False, "older than what we know")
        row.provider_status = status
        row.provider_id = row.provider_id or sid or None
        if status in OUTBOX_STATUS:
            row.status = OUTBOX_STATUS[status]
        elif row.status in (OutboxStatus.pending, OutboxStatus.sending):
            row.status = OutboxStatus.sent  # an ambiguous send did reach Twilio after all
        row.sent_at = row.sent_at or now
        code = int(error_code) if error_code.isdigit() else None
        if code is not None:
            row.last_error = f"twilio_{code}"
        address = row.address or ""
        if code == UNSUBSCRIBED:
            optout.set_opted_out(session, dealer_id=dealer_id, channel=Channel.sms, address=address, opted_out=True, now=now)
        elif code in UNREACHABLE_CODES:
            optout.set_unreachable(session, dealer_id=dealer_id, channel=Channel.sms, address=address, now=now)
    return StatusUpdate(True)
