"""Twilio's inbound SMS/MMS form, read into an InboundMessage.

Twilio posts `application/x-www-form-urlencoded`: MessageSid, From, To, Body, NumMedia and, per
picture, MediaUrlN / MediaContentTypeN (plus OptOutType when its Advanced Opt-Out recognised a
keyword). Keys may repeat, and the signature covers every value, so the form is kept as lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from bot.messages import InboundMessage
from bot.models import Channel
from integrations.twilio.numbers import e164

MAX_MEDIA = 10  # Twilio's own limit per message


class FormParams(dict[str, list[str]]):
    """A form with repeated keys kept; `getall` is what twilio's RequestValidator reads."""

    @classmethod
    def parse(cls, body: bytes) -> FormParams:
        form = cls()
        for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            form.setdefault(key, []).append(value)
        return form

    def getall(self, key: str) -> list[str]:
        return self[key]

    def first(self, key: str, default: str = "") -> str:
        values = self.get(key)
        return values[0] if values else default


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A signed form that is not a message we can file (no sender or no MessageSid)."""

    reason: str
    message_sid: str | None
    address: str


def read_form(dealer_id: int, form: FormParams) -> InboundMessage | Unreadable:
    sid = form.first("MessageSid") or form.first("SmsSid") or None
    sender = form.first("From").strip()
    if not sid or not sender:
        return Unreadable("no MessageSid or From", sid, sender)
    address = e164(sender) or sender  # a short code or an alphanumeric sender stays as it is
    media = [
        {"url": url, "content_type": form.first(f"MediaContentType{i}")}
        for i in range(min(_int(form.first("NumMedia")), MAX_MEDIA))
        if (url := form.first(f"MediaUrl{i}"))
    ]
    body = form.first("Body")
    payload: dict[str, object] = {"to": form.first("To")}
    if media:
        payload["media"] = media
    if opt_out_type := form.first("OptOutType"):
        payload["opt_out_type"] = opt_out_type
    return InboundMessage(
        dealer_id=dealer_id,
        channel=Channel.sms,
        address=address,
        text=body,
        channel_message_id=sid,
        kind="media" if media and not body.strip() else "text",
        payload=payload,
    )


def _int(value: str) -> int:
    return int(value) if value.isdigit() else 0
