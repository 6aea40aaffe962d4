"""A decrypted WeChat message or event as an `InboundMessage`, and what to do with it.

`read_message` never raises for a body that parsed as XML: content it cannot understand
(unknown MsgType, a missing field, a tag nested where text was expected) comes back as an
`Unparsable`, which the webhook keeps as a dead letter and answers `success`.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bot.messages import InboundMessage
from bot.models import Channel
from integrations.wechat.security import child_text

# Menu buttons (自定义菜单 CLICK keys) as the words an owner would type, so the NLU routes them.
MENU_KEYS = {
    "BOOK_SERVICE": "预约保养",
    "ROADSIDE": "道路救援",
    "MY_CAR": "我的车辆",
    "HUMAN": "人工客服",
}
MAX_ADDRESS = 128
MAX_TEXT = 10_000


class Action(str, Enum):
    turn = "turn"  # a bot turn answers it (pipeline.handle_inbound)
    fixed = "fixed"  # a fixed WeChat text answers it (texts.py key in `text_key`)
    silent = "silent"  # stored as handled; no answer
    unsubscribe = "unsubscribe"  # silent, and the openid is opted out


@dataclass(frozen=True, slots=True)
class Parsed:
    message: InboundMessage
    action: Action
    text_key: str | None = None  # for Action.fixed


@dataclass(frozen=True, slots=True)
class Unparsable:
    reason: str
    address: str  # FromUserName when it could be read, else ""
    channel_message_id: str | None


class _Missing(Exception):
    pass


def read_message(root: ET.Element, dealer_id: int) -> Parsed | Unparsable:
    """Maps one message (the decrypted or plaintext <xml>) to what the webhook does with it."""
    address = (child_text(root, "FromUserName") or "").strip()[:MAX_ADDRESS]
    msg_id = (child_text(root, "MsgId") or "").strip()[:MAX_ADDRESS] or None
    try:
        return _read(root, dealer_id, address, msg_id)
    except _Missing as missing:
        return Unparsable(str(missing), address, msg_id)


def _field(root: ET.Element, tag: str) -> str:
    value = child_text(root, tag)
    if value is None:
        raise _Missing(f"<{tag}> is missing, repeated or not plain text")
    return value


def _optional(root: ET.Element, tag: str) -> str:
    return (child_text(root, tag) or "").strip()


def _number(root: ET.Element, tag: str) -> float:
    value = _field(root, tag).strip()
    try:
        number = float(value)
    except ValueError:
        raise _Missing(f"<{tag}> is not a number") from None
    if not math.isfinite(number):
        raise _Missing(f"<{tag}> is not a number")
    return number


def _read(root: ET.Element, dealer_id: int, address: str, msg_id: str | None) -> Parsed | Unparsable:
    msg_type = _field(root, "MsgType").strip().lower()
    if not address:
        raise _Missing("<FromUserName> is missing")
    create_time = _field(root, "CreateTime").strip()

    def message(kind: str, text: str = "", payload: dict[str, Any] | None = None, message_id: str | None = None) -> InboundMessage:
        return InboundMessage(
            dealer_id=dealer_id,
            channel=Channel.wechat,
            address=address,
            text=text[:MAX_TEXT],
            channel_message_id=message_id or msg_id,
            kind=kind,
            payload=payload or {},
        )

    if msg_type != "event" and msg_id is None:
        raise _Missing("<MsgId> is missing")
    if msg_type == "text":
        return Parsed(message("text", _field(root, "Content")), Action.turn)
    if msg_type == "voice":
        recognition = _optional(root, "Recognition")
        payload = {"media_id": _optional(root, "MediaId"), "format": _optional(root, "Format"), "recognition": recognition}
        if recognition:
            return Parsed(message("voice", recognition, payload), Action.turn)
        return Parsed(message("voice", "", payload), Action.fixed, "voice_unrecognised")
    if msg_type == "location":
        latitude, longitude = _number(root, "Location_X"), _number(root, "Location_Y")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise _Missing("location out of range")
        label = _optional(root, "Label")
        payload = {"latitude": latitude, "longitude": longitude, "label": label, "scale": _optional(root, "Scale")}
        return Parsed(message("location", label, payload), Action.turn)
    if msg_type == "image":
        payload = {"pic_url": _field(root, "PicUrl").strip(), "media_id": _optional(root, "MediaId")}
        return Parsed(message("image", "[图片]", payload), Action.fixed, "image_received")
    if msg_type == "link":
        title = _optional(root, "Title")
        payload = {"url": _field(root, "Url").strip(), "title": title, "description": _optional(root, "Description")}
        return Parsed(message("link", f"[链接] {title}".strip(), payload), Action.fixed, "link_received")
    if msg_type == "event":
        return _read_event(root, address, create_time, message)
    raise _Missing(f"unknown MsgType {msg_type!r}")


def _read_event(root: ET.Element, address: str, create_time: str, message: Any) -> Parsed:
    event = _field(root, "Event").strip()
    name = event.upper()
    # events have no MsgId: the owner, the time and the event name identify one (and its retries)
    event_id = f"{address}:{create_time}:{event}"[:MAX_ADDRESS]
    key = _optional(root, "EventKey")
    if name == "SUBSCRIBE":
        payload = {"event": "subscribe", "event_key": key}
        if key.startswith("qrscene_"):
            payload["scene"] = key.removeprefix("qrscene_")
            payload["ticket"] = _optional(root, "Ticket")
        return Parsed(message("event", "", payload, event_id), Action.fixed, "welcome")
    if name == "UNSUBSCRIBE":
        return Parsed(message("event", "", {"event": "unsubscribe"}, event_id), Action.unsubscribe)
    if name == "SCAN":
        payload = {"event": "SCAN", "scene": key, "ticket": _optional(root, "Ticket")}
        return Parsed(message("event", "", payload, event_id), Action.silent)
    if name == "CLICK":
        words = MENU_KEYS.get(key)
        payload = {"event": "CLICK", "key": key}
        return Parsed(message("event", words or "", payload, event_id), Action.turn if words else Action.silent)
    if name == "LOCATION":
        payload = {
            "event": "LOCATION",
            "latitude": _number(root, "Latitude"),
            "longitude": _number(root, "Longitude"),
            "precision": _optional(root, "Precision"),
        }
        return Parsed(message("event", "", payload, event_id), Action.silent)
    if name == "TEMPLATESENDJOBFINISH":
        payload = {"event": "TEMPLATESENDJOBFINISH", "status": _optional(root, "Status"), "msg_id": _optional(root, "MsgID")}
        return Parsed(message("event", "", payload, event_id), Action.silent)
    # VIEW and anything newer: kept, not answered
    return Parsed(message("event", "", {"event": event, "event_key": key}, event_id), Action.silent)
