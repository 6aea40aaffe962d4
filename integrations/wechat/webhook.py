"""The WeChat webhook: `GET /wechat/{dealer}` (URL check) and `POST /wechat/{dealer}` (messages).

A POST goes through, in order: a 64 KB body cap (413), the timestamp window (403), the
signature (403; `msg_signature` over the Encrypt field in safe mode), no DTD and a well-formed
envelope (400), decryption (400 bad ciphertext, 403 wrong AppId). Nothing is stored and no
turn runs for a refused request. Then the replay memory (`webhook_request`): the same
(timestamp, nonce) with the same body is WeChat's retry and is answered like the first try (the
pipeline dedupes on MsgId); with another body it is refused when the body was not signed.

WeChat waits 5 s for an answer. The turn runs in a worker thread; when its replies are ready
within the deadline (`app.state.wechat_deadline`, else DEFAULT_DEADLINE) the webhook answers
them passively and marks their outbox rows sent. Otherwise it answers `success` and the turn
finishes in the background; its reply rows stay pending and the dispatcher sends them
through the customer-service API after PASSIVE_GRACE.

No input makes this answer 500: a correctly signed message nobody understands is stored as a
dead letter and answered `success`, and so is one whose handling failed unexpectedly.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from bot import conversation_status, optout
from bot.background import BackgroundTurns
from bot.db import Database
from bot.deps import DatabaseDep
from bot.messages import Reply
from bot.models import (
    Channel,
    ChannelAccount,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    WebhookRequest,
    utcnow,
)
from bot.outbound import add_reply
from bot.passive import mark_passive_sent
from bot.pipeline import Pipeline, handle_without_turn
from bot.webhooks import read_capped
from integrations.wechat import binding, texts
from integrations.wechat.inbound import Action, Parsed, Unparsable, read_message
from integrations.wechat.security import (
    Refused,
    SafeMode,
    check_signature,
    check_timestamp,
    child_text,
    parse_xml,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["wechat"])

# WeChat gives up after 5 s; answer well before, network included.
DEFAULT_DEADLINE = 4.0
# webhook_request rows older than this are deleted, at most once per PURGE_EVERY per process
REPLAY_MEMORY = timedelta(days=1)
PURGE_EVERY = 600.0
SUCCESS = "success"

_turns = BackgroundTurns("wechat-turn")
_last_purge = 0.0
wait_for_turns = _turns.wait


@dataclass(frozen=True, slots=True)
class Account:
    dealer_id: int
    dealer_name: str
    dealer_language: str
    token: str
    appid: str
    aes_key: str
    mode: str  # safe, compatible, plain
    allow_plain: bool

    def safe(self) -> SafeMode:
        if not self.aes_key or not self.appid:
            raise Refused(403, "this account has no EncodingAESKey or AppId for safe mode")
        return SafeMode(self.token, self.aes_key, self.appid)


@dataclass(frozen=True, slots=True)
class Checked:
    """A request that passed every check: what it says, and how to answer it."""

    root: Any  # the message's <xml> element, or None when the decrypted text did not parse
    raw: str  # the message XML (decrypted in safe mode)
    encrypted: bool
    timestamp: str
    nonce: str
    body_sha256: str
    parse_error: str | None = None


# -- routes ------------------------------------------------------------------------------------


@router.get("/wechat/{dealer}", response_class=PlainTextResponse, include_in_schema=False)
def verify_url(
    dealer: str,
    db: DatabaseDep,
    signature: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
    echostr: str | None = None,
) -> PlainTextResponse:
    """WeChat's URL check: answers `echostr` when `signature` is right (also in safe mode)."""
    try:
        account = load_account(db, dealer)
        check_signature(account.token, signature, timestamp or "", nonce or "")
    except Refused as refused:
        return _refusal(refused, dealer)
    return PlainTextResponse(echostr or "")


@router.post("/wechat/{dealer}", include_in_schema=False)
async def receive(dealer: str, request: Request) -> Response:
    """Receives one message or event; answers a passive reply or `success` within the deadline."""
    db: Database = request.app.state.db
    pipeline: Pipeline = request.app.state.pipeline
    try:
        account = await anyio.to_thread.run_sync(load_account, db, dealer)
        body = await read_capped(request)
        checked = check_request(account, dict(request.query_params), body)
        retry = await anyio.to_thread.run_sync(remember_request, db, account, checked)
    except Refused as refused:
        return _refusal(refused, dealer)
    except Exception:
        log.exception("wechat request could not be checked", extra={"dealer": dealer})
        return PlainTextResponse("temporarily unavailable", status_code=503)
    try:
        return await _answer(request, db, pipeline, account, checked, retry)
    except Exception:
        log.exception("wechat message failed", extra={"dealer_id": account.dealer_id})
        try:
            await anyio.to_thread.run_sync(_keep_somehow, db, pipeline, account, checked)
        except Exception:
            log.exception("could not store the failed wechat message", extra={"dealer_id": account.dealer_id})
            return PlainTextResponse("temporarily unavailable", status_code=503)  # WeChat retries
        return PlainTextResponse(SUCCESS)


def _refusal(refused: Refused, dealer: str) -> PlainTextResponse:
    log.warning("wechat request refused: %s", refused.reason, extra={"dealer": dealer, "status": refused.status})
    return PlainTextResponse(refused.reason, status_code=refused.status)


# -- checks -------------------------------------------------------------------------------------


def load_account(db: Database, slug: str) -> Account:
    """The dealer's enabled WeChat account; Refused(404) when there is none."""
    with db.transaction() as session:
        row = session.execute(
            select(Dealer.id, Dealer.name, Dealer.language, ChannelAccount.config, ChannelAccount.secrets)
            .join(ChannelAccount, ChannelAccount.dealer_id == Dealer.id)
            .where(Dealer.slug == slug, ChannelAccount.channel == Channel.wechat, ChannelAccount.enabled.is_(True))
        ).first()
    if row is None:
        raise Refused(404, "no WeChat account here")
    config, secrets = row.config or {}, row.secrets or {}
    mode = str(config.get("mode") or "safe")
    if mode not in ("safe", "compatible", "plain") or not secrets.get("token"):
        raise Refused(404, "this WeChat account is not configured")
    return Account(
        dealer_id=row.id,
        dealer_name=row.name,
        dealer_language=row.language,
        token=str(secrets["token"]),
        appid=str(config.get("appid") or ""),
        aes_key=str(secrets.get("aes_key") or ""),
        mode=mode,
        allow_plain=config.get("allow_plain") is True,
    )


def check_request(account: Account, query: dict[str, str], body: bytes) -> Checked:
    """Time, signature, envelope, decryption; Refused with 400/403 when any fails."""
    timestamp, nonce = query.get("timestamp"), query.get("nonce")
    check_timestamp(timestamp, nonce)
    assert timestamp is not None and nonce is not None
    digest = hashlib.sha256(body).hexdigest()
    if account.mode == "plain":
        return _plaintext(account, query, body, timestamp, nonce, digest)
    envelope = parse_xml(body)
    encrypt = child_text(envelope, "Encrypt")
    if encrypt is None or not encrypt.strip():
        if account.mode == "compatible":
            return _plaintext(account, query, body, timestamp, nonce, digest)
        raise Refused(400, "safe mode: the envelope has no <Encrypt>")
    raw = account.safe().decrypt(encrypt.strip(), query.get("msg_signature"), timestamp, nonce)
    try:
        root, error = parse_xml(raw), None
    except Refused as refused:  # signed by WeChat, yet not XML we can read: a dead letter
        root, error = None, refused.reason
    return Checked(root, raw, True, timestamp, nonce, digest, error)


def _plaintext(account: Account, query: dict[str, str], body: bytes, timestamp: str, nonce: str, digest: str) -> Checked:
    if not account.allow_plain:
        raise Refused(403, "plaintext messages are not allowed for this account")
    check_signature(account.token, query.get("signature"), timestamp, nonce)
    # the signature covers the query only: anyone who saw one URL could post any body with it
    log.warning("wechat plaintext message accepted (its body is not signed)", extra={"dealer_id": account.dealer_id})
    root = parse_xml(body)
    return Checked(root, body.decode("utf-8"), False, timestamp, nonce, digest)


def remember_request(db: Database, account: Account, checked: Checked) -> bool:
    """Records (timestamp, nonce, body hash); True when this exact request was seen before.

    The same pair with another body is refused when the body is unsigned (plaintext); a signed
    body with another Encrypt passed its msg_signature and is handled.
    """
    _purge_now_and_then(db)
    try:
        with db.transaction() as session:
            session.execute(
                insert(WebhookRequest).values(
                    dealer_id=account.dealer_id,
                    channel=Channel.wechat,
                    timestamp=checked.timestamp,
                    nonce=checked.nonce,
                    body_sha256=checked.body_sha256,
                    created_at=utcnow(),
                )
            )
        return False
    except IntegrityError:
        with db.transaction() as session:
            seen = session.scalar(
                select(WebhookRequest.body_sha256).where(
                    WebhookRequest.dealer_id == account.dealer_id,
                    WebhookRequest.channel == Channel.wechat,
                    WebhookRequest.timestamp == checked.timestamp,
                    WebhookRequest.nonce == checked.nonce,
                )
            )
    if seen == checked.body_sha256:
        return True
    if not checked.encrypted:
        raise Refused(403, "this timestamp and nonce were used before with another body")
    return False


def _purge_now_and_then(db: Database) -> None:
    global _last_purge
    if time.monotonic() - _last_purge < PURGE_EVERY:
        return
    _last_purge = time.monotonic()
    try:
        with db.transaction() as session:
            session.execute(delete(WebhookRequest).where(WebhookRequest.created_at < utcnow() - REPLAY_MEMORY))
    except Exception:
        log.exception("could not purge old webhook requests")


# -- answering ----------------------------------------------------------------------------------


async def _answer(
    request: Request, db: Database, pipeline: Pipeline, account: Account, checked: Checked, retry: bool
) -> Response:
    parsed = read_message(checked.root, account.dealer_id) if checked.root is not None else None
    if not isinstance(parsed, Parsed):
        reason = parsed.reason if isinstance(parsed, Unparsable) else f"not XML: {checked.parse_error}"
        await anyio.to_thread.run_sync(store_dead_letter, db, account, checked, parsed, reason, retry)
        return PlainTextResponse(SUCCESS)

    secret = request.app.state.settings.secret_key.get_secret_value()
    future = await _turns.within(_deadline(request), handle, db, pipeline, account, parsed, secret)
    if future is None:
        log.info("wechat turn is slow: answered success, the dispatcher sends the reply", extra={"dealer_id": account.dealer_id})
        return PlainTextResponse(SUCCESS)
    replies = future.result()  # an error here is handled by the caller: stored, then success
    if not replies:
        return PlainTextResponse(SUCCESS)
    ids = [r.message_id for r in replies if r.message_id is not None]
    claimed = await anyio.to_thread.run_sync(lambda: mark_passive_sent(db, ids, channel=Channel.wechat, again=True))
    if not claimed:
        return PlainTextResponse(SUCCESS)  # the dispatcher has them: answering too would send twice
    content = "\n\n".join(r.as_plain_text() for r in replies)
    xml = passive_text_xml(to_user=parsed.message.address, from_user=child_text(checked.root, "ToUserName") or "", content=content)
    if checked.encrypted:
        xml = account.safe().encrypt(xml, checked.nonce, str(int(time.time())))
    return Response(content=xml, media_type="application/xml")


def _deadline(request: Request) -> float:
    value = getattr(request.app.state, "wechat_deadline", None)
    if value is None:
        value = getattr(request.app.state.settings, "wechat_deadline", None)
    return float(value) if value is not None else DEFAULT_DEADLINE


def passive_text_xml(*, to_user: str, from_user: str, content: str) -> str:
    """A passive text reply (被动回复文本消息)."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        "</xml>"
    )


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# -- handling (worker threads) -------------------------------------------------------------------


def handle(db: Database, pipeline: Pipeline, account: Account, parsed: Parsed, secret: str) -> list[Reply]:
    """Stores the message and computes its replies (a bot turn, a fixed text, or none).

    `secret` is the app's secret_key: it checks bind QR scenes and hashes SMS codes.
    """
    if parsed.action == Action.turn:
        # account binding ("绑定", then phone and SMS code) runs before the flows
        replies = binding.handle_chat(
            db, pipeline, parsed.message, secret_key=secret, dealer_name=account.dealer_name, dealer_language=account.dealer_language
        )
        if replies is not None:
            return replies
        return pipeline.handle_inbound(parsed.message)
    message_id, conversation_id, status = pipeline.store(parsed.message)
    if status == MessageStatus.received:
        _handle_without_turn(db, account, parsed, message_id, conversation_id, secret)
    return pipeline.replies_to(message_id)


def _handle_without_turn(
    db: Database, account: Account, parsed: Parsed, message_id: int, conversation_id: int | None, secret: str
) -> None:
    """Marks a message no bot turn reads as handled, with its fixed reply if it has one."""
    inbound = parsed.message
    now = utcnow()
    with db.transaction() as session:
        conversation, marked = handle_without_turn(session, conversation_id, message_id, now)
        if not marked:
            return  # a turn handled it meanwhile
        if parsed.action == Action.unsubscribe or (inbound.payload.get("event") == "subscribe"):
            optout.set_opted_out(
                session, dealer_id=inbound.dealer_id, channel=Channel.wechat, address=inbound.address,
                opted_out=parsed.action == Action.unsubscribe, now=now,
            )
        bind_text = None
        scene = inbound.payload.get("scene")
        if conversation is not None and inbound.payload.get("event") in ("SCAN", "subscribe") and binding.is_bind_scene(scene):
            # a bind QR code (service desk, repair order): link the openid to its customer
            language = session.scalar(select(Customer.language).where(Customer.id == conversation.customer_id))
            outcome = binding.bind_by_scene(
                session, dealer_id=inbound.dealer_id, openid=inbound.address, scene=scene, secret_key=secret, now=now,
                lang=language or account.dealer_language,
            )
            if outcome.bound is not None:
                conversation = outcome.bound.conversation  # the real customer's, after a merge
            bind_text = outcome.text
        if conversation is None:
            return
        if conversation.status in conversation_status.HANDED_OFF:
            # a person owns the conversation: no bot text, the console shows the message
            conversation_status.record_event(
                session=session, conversation=conversation, kind="message", actor="owner", data={"message_id": message_id}
            )
            return
        if parsed.action == Action.fixed and parsed.text_key is not None:
            language = session.scalar(select(Customer.language).where(Customer.id == conversation.customer_id))
            body = texts.text(parsed.text_key, language or account.dealer_language, dealer=account.dealer_name)
            add_reply(session, conversation, Channel.wechat, inbound.address, message_id, body, now)
        if bind_text is not None:
            add_reply(session, conversation, Channel.wechat, inbound.address, message_id, bind_text, now)


def store_dead_letter(
    db: Database, account: Account, checked: Checked, parsed: Unparsable | None, reason: str, retry: bool
) -> None:
    """Keeps a signed message nobody could read, for staff; a retry of it is not kept twice."""
    address = parsed.address if parsed else ""
    msg_id = parsed.channel_message_id if parsed else None
    if retry and msg_id is None:
        return
    log.warning("wechat message kept as a dead letter: %s", reason, extra={"dealer_id": account.dealer_id})
    try:
        with db.transaction() as session:
            session.execute(
                insert(Message).values(
                    dealer_id=account.dealer_id,
                    conversation_id=None,
                    channel=Channel.wechat,
                    channel_message_id=msg_id,
                    direction=Direction.inbound,
                    status=MessageStatus.dead,
                    address=address,
                    kind="unparsed",
                    text="",
                    payload={"xml": checked.raw, "reason": reason},
                    sender="owner",
                    error=reason[:500],
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        pass  # WeChat's retry of the same MsgId: kept already


def _keep_somehow(db: Database, pipeline: Pipeline, account: Account, checked: Checked) -> None:
    """After an unexpected error: makes sure the message is stored before answering success."""
    parsed = read_message(checked.root, account.dealer_id) if checked.root is not None else None
    if isinstance(parsed, Parsed):
        pipeline.store(parsed.message)  # idempotent: finds the row when it was stored already
        return
    store_dead_letter(db, account, checked, parsed, "handling failed", retry=False)
