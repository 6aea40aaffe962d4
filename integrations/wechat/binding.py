"""Account binding: an owner links their WeChat openid to their customer record.

Two ways in, both ending in `bind`:

* A scene QR code (带参数二维码) printed at the service desk or on a repair order (made with
  `dealercare wechat qrcode`). Its scene string is `b.<customer_id>.<order>.<day>.<mac>`: `day`
  is the issue day (days since 2020-01-01 UTC, base 36), the MAC is HMAC-SHA256 over everything
  before it under the app's `secret_key` (truncated to 16 hex digits; WeChat allows 64
  characters). Scanning it (a SCAN event, or a subscribe whose EventKey is `qrscene_<scene>`)
  binds at once. A forged or altered scene, one older than 30 days (the temporary QR code's own
  life), or one naming another dealer's customer, binds nothing and gets a polite note.
* Phone + SMS code in chat: "绑定" / "绑定手机" / "bind" asks for the phone number; a mainland
  mobile that matches one `Customer.phone` of the dealer gets a 6-digit code by SMS (an outbox
  row, kind `verification_code`); the right code binds. The flow's state lives on the
  conversation under the `wechat_bind` key (only its hash is stored, with the expiry and the
  attempts). The flow engine never sees it: the webhook calls `handle_chat` before the
  pipeline, and a message that is neither a phone number nor a code leaves the flow and goes to
  the pipeline as usual.

Binding points the openid's wechat `ChannelIdentity` at the customer (creating it if needed,
`opted_out=False`) and sets `Customer.preferred_channel = wechat`. When the openid had been
filed under a customer the pipeline auto-created for it (no name, phone, cars, bookings,
tickets or other identities), that empty customer is merged away: its conversations move to
the real customer (into the real customer's open conversation when there is one, so the owner
keeps one history) and the empty record is deleted. A customer that holds anything else keeps
its own conversations; only the identity moves.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import phonenumbers
from pydantic import SecretStr
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import conversation_status
from bot.db import Database
from bot.messages import InboundMessage, Reply
from bot.models import (
    Appointment,
    AuditLog,
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    Dealer,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Survey,
    Ticket,
    Vehicle,
)
from bot.outbound import add_reply
from bot.pipeline import Pipeline
from integrations.wechat import texts
from nlu.entities.phones import extract_phones
from nlu.entities.plates import fold_width

log = logging.getLogger(__name__)

# -- scene QR codes ------------------------------------------------------------------------------

PURPOSES = {"bind": "b"}
MAX_SCENE = 64  # WeChat's limit for scene_str
MAC_CHARS = 16
MAX_AGE_DAYS = 30  # a temporary QR code lives 30 days at most (expire_seconds 2592000)
DAY_ZERO = date(2020, 1, 1)
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_ORDER = re.compile(r"[A-Za-z0-9_-]{0,40}")
_SCENE = re.compile(
    r"(?P<purpose>[a-z])\.(?P<customer>[1-9][0-9]{0,17})\.(?P<order>[A-Za-z0-9_-]{0,40})"
    r"\.(?P<day>0|[1-9a-z][0-9a-z]{0,3})\.(?P<mac>[0-9a-f]{16})"
)


def _key(secret_key: str | SecretStr) -> bytes:
    value = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
    if not value:
        raise ValueError("no secret key")
    return value.encode()


def _mac(secret_key: str | SecretStr, body: str) -> str:
    return hmac.new(_key(secret_key), b"dealercare/wechat-scene/" + body.encode(), hashlib.sha256).hexdigest()[:MAC_CHARS]


def _day_number(now: datetime | None) -> int:
    """Days since 2020-01-01 of `now` in UTC (a naive `now` is taken as UTC)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return (now.date() - DAY_ZERO).days


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("a scene cannot be issued before 2020-01-01")
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _B36[digit] + digits
        if number == 0:
            return digits


def scene_for(
    customer_id: int,
    secret_key: str | SecretStr,
    purpose: str = "bind",
    order: str | None = None,
    *,
    now: datetime | None = None,
) -> str:
    """The scene string for a QR code that binds the scanning openid to `customer_id`.

    It carries its issue day (`now`, default the current time) and is refused 30 days later.
    """
    prefix = PURPOSES.get(purpose)
    if prefix is None:
        raise ValueError(f"unknown scene purpose {purpose!r}")
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise ValueError("customer_id must be a positive integer")
    order = order or ""
    if not _ORDER.fullmatch(order):
        raise ValueError("order: at most 40 letters, digits, '-' or '_'")
    body = f"{prefix}.{customer_id}.{order}.{_base36(_day_number(now))}"
    scene = f"{body}.{_mac(secret_key, body)}"
    if len(scene) > MAX_SCENE:
        raise ValueError(f"the scene is over {MAX_SCENE} characters (shorten the order)")
    return scene


def verify_scene(
    scene: str, secret_key: str | SecretStr, now: datetime | None = None, max_age_days: int = MAX_AGE_DAYS
) -> tuple[int, str | None] | None:
    """(customer_id, order or None) of a bind scene made with this key at most `max_age_days`
    days before `now` (default the current time); None for anything else."""
    if not isinstance(scene, str) or len(scene) > MAX_SCENE:
        return None
    match = _SCENE.fullmatch(scene)
    if match is None or match["purpose"] != PURPOSES["bind"]:
        return None
    body = scene[: match.start("mac") - 1]
    if not hmac.compare_digest(_mac(secret_key, body), match["mac"]):
        return None
    age = _day_number(now) - int(match["day"], 36)
    if age > max_age_days or age < -1:  # a day ahead is tolerated: clocks differ a little
        return None
    return int(match["customer"]), match["order"] or None


def is_bind_scene(scene: Any) -> bool:
    """Whether a scene looks like one of ours (then a bad one deserves a note, not silence)."""
    return isinstance(scene, str) and scene.startswith(PURPOSES["bind"] + ".")


# -- binding -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationRef:
    id: int
    dealer_id: int
    customer_id: int
    status: ConversationStatus


@dataclass(frozen=True, slots=True)
class Bound:
    customer_id: int
    name: str
    language: str
    conversation: ConversationRef  # where the owner's WeChat conversation is now
    previous_customer_id: int | None
    merged: bool


def bind(
    session: Session,
    *,
    dealer_id: int,
    openid: str,
    customer_id: int,
    now: datetime,
    via: str,
    order: str | None = None,
) -> Bound:
    """Points the openid at the customer and makes WeChat their preferred channel.

    The customer must belong to `dealer_id` (callers check). Runs in the caller's transaction.
    """
    identity_filter = (
        ChannelIdentity.dealer_id == dealer_id,
        ChannelIdentity.channel == Channel.wechat,
        ChannelIdentity.address == openid,
    )
    identity = session.execute(select(ChannelIdentity.id, ChannelIdentity.customer_id).where(*identity_filter)).first()
    previous = identity.customer_id if identity is not None else None
    if identity is None:
        try:
            with session.begin_nested():
                session.add(
                    ChannelIdentity(
                        dealer_id=dealer_id, customer_id=customer_id, channel=Channel.wechat, address=openid,
                        opted_out=False, created_at=now,
                    )
                )
        except IntegrityError:  # a first message from this openid created it a moment ago
            previous = session.scalar(select(ChannelIdentity.customer_id).where(*identity_filter))
    session.execute(
        update(ChannelIdentity).where(*identity_filter).values(customer_id=customer_id, opted_out=False)
    )
    session.execute(
        update(Customer)
        .where(Customer.id == customer_id, Customer.dealer_id == dealer_id)
        .values(preferred_channel=Channel.wechat)
    )
    merged = False
    if previous is not None and previous != customer_id and _is_empty(session, dealer_id, previous):
        _merge_into(session, dealer_id, previous, customer_id)
        merged = True
    conversation = _open_conversation(session, dealer_id, customer_id, now)
    customer = session.execute(select(Customer.name, Customer.language).where(Customer.id == customer_id)).one()
    conversation_status.record_event(
        session=session,
        conversation=conversation,
        kind="wechat_bound",
        actor="owner",
        data={
            "customer_id": customer_id,
            "via": via,
            "order": order,
            "previous_customer_id": previous,
            "merged": merged,
        },
    )
    log.info(
        "wechat openid bound",
        extra={"dealer_id": dealer_id, "customer_id": customer_id, "via": via, "merged": merged},
    )
    return Bound(customer_id, customer.name or "", customer.language or "zh", conversation, previous, merged)


def _is_empty(session: Session, dealer_id: int, customer_id: int) -> bool:
    """An auto-created customer: nothing but its conversations (and no other identity)."""
    row = session.execute(
        select(Customer.name, Customer.phone, Customer.notes, Customer.birthday, Customer.advisor_id).where(
            Customer.id == customer_id, Customer.dealer_id == dealer_id
        )
    ).first()
    if row is None or row.name or row.phone or row.notes or row.birthday or row.advisor_id:
        return False
    for model in (Vehicle, Appointment, Ticket, ServiceRecord, Survey, ChannelIdentity):
        if session.scalar(select(exists().where(model.customer_id == customer_id))):  # type: ignore[attr-defined]
            return False
    return True


def _merge_into(session: Session, dealer_id: int, old: int, new: int) -> None:
    """Moves an empty customer's history to the real one, then deletes the empty customer."""
    target_open = session.scalar(
        select(Conversation.id)
        .where(Conversation.dealer_id == dealer_id, Conversation.customer_id == new, Conversation.status != ConversationStatus.closed)
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update(key_share=True)
    )
    old_open = session.scalars(
        select(Conversation.id).where(
            Conversation.dealer_id == dealer_id, Conversation.customer_id == old, Conversation.status != ConversationStatus.closed
        )
    ).all()
    if target_open is not None and old_open:
        # one open conversation per owner: the auto-created one's messages join the real one
        for model in (Message, ConversationEvent, Outbox, Ticket):
            session.execute(
                update(model).where(model.conversation_id.in_(old_open)).values(conversation_id=target_open)  # type: ignore[attr-defined]
            )
        session.execute(delete(Conversation).where(Conversation.id.in_(old_open)))
    session.execute(update(Conversation).where(Conversation.customer_id == old).values(customer_id=new))
    session.execute(update(Outbox).where(Outbox.customer_id == old).values(customer_id=new))
    session.execute(update(AuditLog).where(AuditLog.customer_id == old).values(customer_id=new))
    session.execute(delete(Customer).where(Customer.id == old, Customer.dealer_id == dealer_id))


def _open_conversation(session: Session, dealer_id: int, customer_id: int, now: datetime) -> ConversationRef:
    row = session.execute(
        select(Conversation.id, Conversation.dealer_id, Conversation.customer_id, Conversation.status)
        .where(
            Conversation.dealer_id == dealer_id,
            Conversation.customer_id == customer_id,
            Conversation.status != ConversationStatus.closed,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    ).first()
    if row is not None:
        return ConversationRef(row.id, row.dealer_id, row.customer_id, ConversationStatus(row.status))
    conversation = Conversation(dealer_id=dealer_id, customer_id=customer_id, state={}, last_channel=Channel.wechat, created_at=now)
    session.add(conversation)
    session.flush()
    return ConversationRef(conversation.id, dealer_id, customer_id, ConversationStatus.bot)


def confirmation(bound: Bound) -> str:
    lang = bound.language if bound.language in ("zh", "en") else "zh"
    name = bound.name or ("尊敬的车主" if lang == "zh" else "Dear customer")
    return texts.text("bind_confirmed", lang, name=name)


@dataclass(frozen=True, slots=True)
class SceneOutcome:
    bound: Bound | None
    text: str


def bind_by_scene(
    session: Session, *, dealer_id: int, openid: str, scene: str, secret_key: str | SecretStr, now: datetime, lang: str | None
) -> SceneOutcome:
    """Binds for a scanned bind scene; a forged one (or another dealer's customer) binds nothing."""
    verified = verify_scene(scene, secret_key, now=now)
    customer = None
    if verified is not None:
        customer = session.scalar(select(Customer.id).where(Customer.id == verified[0], Customer.dealer_id == dealer_id))
    if verified is None or customer is None:
        log.warning("wechat bind scene refused", extra={"dealer_id": dealer_id})
        return SceneOutcome(None, texts.text("bind_scene_invalid", lang))
    bound = bind(session, dealer_id=dealer_id, openid=openid, customer_id=verified[0], now=now, via="scene", order=verified[1])
    return SceneOutcome(bound, confirmation(bound))


# -- phone + SMS code in chat --------------------------------------------------------------------

STATE_KEY = "wechat_bind"
CODE_VALID = timedelta(minutes=10)
PHONE_STEP_VALID = timedelta(minutes=30)
MAX_ATTEMPTS = 5
MAX_CODES_PER_PHONE = 3  # per hour: nobody gets their phone flooded through us
MAX_LOOKUPS = 5  # phone numbers looked up per conversation per day: no probing for owners
TRIGGERS = {"绑定", "绑定手机", "绑定手机号", "绑定手机号码", "绑定微信", "微信绑定", "bind", "bindphone", "bindwechat"}
CANCELS = {"取消", "取消绑定", "不绑定了", "算了", "cancel"}
_NOISE = re.compile(r"[\s。.!！?？,，~～、]+")
_CODE = re.compile(r"\d{4,8}")
_DIGITS = re.compile(r"[\d\s+\-()]{5,}")


def _normal(text: str) -> str:
    return _NOISE.sub("", fold_width(text or "")).lower()


def is_trigger(text: str) -> bool:
    return _normal(text) in TRIGGERS


def mainland_mobile(text: str) -> str | None:
    """The first valid mainland mobile number in the text, in E.164; None when there is none."""
    for entity in extract_phones(text):
        try:
            number = phonenumbers.parse(str(entity.value), "CN")
        except phonenumbers.NumberParseException:
            continue
        if (
            number.country_code == 86
            and phonenumbers.is_valid_number(number)
            and phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
        ):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _code_hash(secret_key: str, conversation_id: int, customer_id: int, code: str) -> str:
    body = f"dealercare/wechat-bind-code/{conversation_id}/{customer_id}/{code}".encode()
    return hmac.new(_key(secret_key), body, hashlib.sha256).hexdigest()


def _bind_pending(db: Database, message: InboundMessage) -> bool:
    """Whether the owner's open conversation is in the middle of the bind flow."""
    with db.transaction() as session:
        state = session.scalar(
            select(Conversation.state)
            .join(
                ChannelIdentity,
                (ChannelIdentity.customer_id == Conversation.customer_id) & (ChannelIdentity.dealer_id == Conversation.dealer_id),
            )
            .where(
                ChannelIdentity.dealer_id == message.dealer_id,
                ChannelIdentity.channel == Channel.wechat,
                ChannelIdentity.address == message.address,
                Conversation.status != ConversationStatus.closed,
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        )
    return isinstance(state, dict) and STATE_KEY in state


def handle_chat(
    db: Database, pipeline: Pipeline, message: InboundMessage, *, secret_key: str, dealer_name: str, dealer_language: str
) -> list[Reply] | None:
    """Handles a bind-flow message and returns its replies; None when the pipeline should take it.

    Only a trigger word, or any message while the flow is under way, costs more than a check.
    """
    if message.channel != Channel.wechat or message.kind not in ("text", "voice"):
        return None
    if not is_trigger(message.text) and not _bind_pending(db, message):
        return None
    message_id, conversation_id, status = pipeline.store(message)
    if status != MessageStatus.received or conversation_id is None:
        return pipeline.replies_to(message_id)  # a retry of a handled message, or a dead letter
    with db.transaction() as session:
        taken = _Step(session, pipeline.clock(), message, message_id, conversation_id, secret_key, dealer_name, dealer_language).run()
    if not taken:
        return None  # the pipeline finds the stored message and runs its turn
    return pipeline.replies_to(message_id)


class _Step:
    """One message of the bind flow, under the conversation's lock."""

    def __init__(
        self,
        session: Session,
        now: datetime,
        message: InboundMessage,
        message_id: int,
        conversation_id: int,
        secret_key: str,
        dealer_name: str,
        dealer_language: str,
    ) -> None:
        self.session = session
        self.now = now
        self.message = message
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.secret_key = secret_key
        self.dealer_name = dealer_name
        self.dealer_language = dealer_language

    def run(self) -> bool:
        """Handles the message; False (with the flow ended) when the pipeline should instead."""
        session = self.session
        row = session.execute(
            select(Conversation.id, Conversation.dealer_id, Conversation.customer_id, Conversation.status, Conversation.state)
            .where(Conversation.id == self.conversation_id)
            .with_for_update(key_share=True)
        ).one()
        self.conversation = ConversationRef(row.id, row.dealer_id, row.customer_id, ConversationStatus(row.status))
        state = dict(row.state or {})
        flow = state.pop(STATE_KEY, None)
        status = session.scalar(select(Message.status).where(Message.id == self.message_id))
        if status != MessageStatus.received:
            return True  # another request handled it meanwhile: its replies are the answer
        self.lang = session.scalar(select(Customer.language).where(Customer.id == row.customer_id)) or self.dealer_language
        text = self.message.text
        if row.status in conversation_status.HANDED_OFF:
            return self._leave(state, flow)  # a person owns the conversation
        if is_trigger(text):
            return self._answer(state, {"step": "phone", "since": self.now.isoformat()}, "bind_ask_phone", dealer=self.dealer_name)
        if not isinstance(flow, dict):
            return self._leave(state, flow)
        if _normal(text) in CANCELS:
            return self._answer(state, None, "bind_cancelled")
        phone = mainland_mobile(text)
        step = flow.get("step")
        if step == "phone":
            if _expired(flow.get("since"), PHONE_STEP_VALID, self.now):
                return self._leave(state, flow)
            if phone is not None:
                return self._lookup(state, phone)
            if _DIGITS.fullmatch(fold_width(text).strip()):
                return self._answer(state, flow, "bind_phone_invalid")
            return self._leave(state, flow)
        if step == "code":
            if phone is not None:
                return self._lookup(state, phone)
            code = _NOISE.sub("", fold_width(text))
            if not _CODE.fullmatch(code):
                return self._leave(state, flow)
            return self._check_code(state, flow, code)
        return self._leave(state, flow)

    # -- steps

    def _lookup(self, state: dict[str, Any], phone: str) -> bool:
        session = self.session
        since = self.now - timedelta(days=1)
        lookups = session.scalar(
            select(func.count())
            .select_from(ConversationEvent)
            .where(
                ConversationEvent.conversation_id == self.conversation.id,
                ConversationEvent.kind == "wechat_bind_lookup",
                ConversationEvent.created_at > since,
            )
        )
        if (lookups or 0) >= MAX_LOOKUPS:
            return self._answer(state, None, "bind_rate_limited")
        national = phone.removeprefix("+86")
        matches = session.scalars(
            select(Customer.id)
            .where(Customer.dealer_id == self.conversation.dealer_id, Customer.phone.in_((phone, national, "86" + national, "0086" + national)))
            .order_by(Customer.id)
            .limit(2)
        ).all()
        session.add(
            ConversationEvent(
                dealer_id=self.conversation.dealer_id,
                conversation_id=self.conversation.id,
                kind="wechat_bind_lookup",
                actor="owner",
                data={"found": len(matches)},
                created_at=self.now,
            )
        )
        if not matches:
            # the flow stays at the phone step: another number, or "人工", may follow
            return self._answer(state, {"step": "phone", "since": self.now.isoformat()}, "bind_not_found")
        if len(matches) > 1:
            return self._answer(state, None, "bind_ambiguous")
        sent = session.scalar(
            select(func.count())
            .select_from(Outbox)
            .where(
                Outbox.dealer_id == self.conversation.dealer_id,
                Outbox.kind == "verification_code",
                Outbox.address == phone,
                Outbox.created_at > self.now - timedelta(hours=1),
            )
        )
        if (sent or 0) >= MAX_CODES_PER_PHONE:
            return self._answer(state, None, "bind_rate_limited")
        customer_id = matches[0]
        code = f"{secrets.randbelow(10**6):06d}"
        expires = self.now + CODE_VALID
        session.execute(
            insert(Outbox).values(
                dealer_id=self.conversation.dealer_id,
                customer_id=customer_id,
                conversation_id=self.conversation.id,
                message_id=None,
                dedupe_key=f"verification_code:{self.message_id}",
                kind="verification_code",
                channel=Channel.sms,
                address=phone,
                body=texts.text("bind_sms", "zh", dealer=self._shop_name(), code=code),
                # a sender must drop a code that is already stale when it finally goes out
                data={"purpose": "wechat_bind", "expires_at": expires.isoformat()},
                status=OutboxStatus.pending,
                not_before=self.now,
                attempts=0,
                created_at=self.now,
            )
        )
        flow = {
            "step": "code",
            "customer_id": customer_id,
            "code_hash": _code_hash(self.secret_key, self.conversation.id, customer_id, code),
            "expires_at": expires.isoformat(),
            "attempts": 0,
        }
        return self._answer(state, flow, "bind_code_sent", last4=phone[-4:])

    def _check_code(self, state: dict[str, Any], flow: dict[str, Any], code: str) -> bool:
        restart = {"step": "phone", "since": self.now.isoformat()}
        if _expired(flow.get("expires_at"), timedelta(0), self.now):
            return self._answer(state, restart, "bind_code_expired")
        attempts = int(flow.get("attempts") or 0)
        if attempts >= MAX_ATTEMPTS:
            return self._answer(state, restart, "bind_too_many")
        customer_id = int(flow.get("customer_id") or 0)
        expected = str(flow.get("code_hash") or "")
        if not hmac.compare_digest(_code_hash(self.secret_key, self.conversation.id, customer_id, code), expected):
            attempts += 1
            if attempts >= MAX_ATTEMPTS:
                return self._answer(state, restart, "bind_too_many")
            return self._answer(state, {**flow, "attempts": attempts}, "bind_code_wrong", left=str(MAX_ATTEMPTS - attempts))
        exists_here = self.session.scalar(
            select(Customer.id).where(Customer.id == customer_id, Customer.dealer_id == self.conversation.dealer_id)
        )
        if exists_here is None:  # deleted meanwhile
            return self._answer(state, None, "bind_not_found")
        self._save(state, None)
        self._mark_handled()
        bound = bind(
            self.session,
            dealer_id=self.conversation.dealer_id,
            openid=self.message.address,
            customer_id=customer_id,
            now=self.now,
            via="sms",
        )
        add_reply(self.session, bound.conversation, Channel.wechat, self.message.address, self.message_id, confirmation(bound), self.now)
        return True

    # -- helpers

    def _shop_name(self) -> str:
        return self.dealer_name or (self.session.scalar(select(Dealer.name).where(Dealer.id == self.conversation.dealer_id)) or "")

    def _leave(self, state: dict[str, Any], flow: Any) -> bool:
        if flow is not None:
            self._save(state, None)
        return False

    def _answer(self, state: dict[str, Any], flow: dict[str, Any] | None, key: str, **values: str) -> bool:
        self._save(state, flow)
        self._mark_handled()
        body = texts.text(key, self.lang, **values)
        add_reply(self.session, self.conversation, Channel.wechat, self.message.address, self.message_id, body, self.now)
        return True

    def _save(self, state: dict[str, Any], flow: dict[str, Any] | None) -> None:
        new_state = dict(state)
        if flow is not None:
            new_state[STATE_KEY] = flow
        self.session.execute(
            update(Conversation)
            .where(Conversation.id == self.conversation.id)
            .values(state=new_state, last_channel=Channel.wechat, last_message_at=self.now)
        )

    def _mark_handled(self) -> None:
        self.session.execute(
            update(Message)
            .where(Message.id == self.message_id, Message.status == MessageStatus.received)
            .values(status=MessageStatus.handled, handled_at=self.now, intent="wechat_bind")
        )


def _expired(value: Any, valid: timedelta, now: datetime) -> bool:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return True
    return now >= moment + valid


