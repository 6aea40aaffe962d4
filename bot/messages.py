"""What crosses the channel boundary: a message in from an owner, a reply or message out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.models import Channel


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from an owner, as a channel parsed it (after its signature checked out)."""

    dealer_id: int
    channel: Channel
    address: str  # openid, E.164 phone, simulator owner key
    text: str = ""
    channel_message_id: str | None = None  # the provider's id; retries carry the same one
    kind: str = "text"  # text, voice, location, image, link, event
    payload: dict[str, Any] = field(default_factory=dict)  # what else the channel knows
    # a known customer, when the channel already knows who it is (simulator, console)
    customer_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One message the bot answers with; buttons degrade to numbered lines on plain channels."""

    text: str
    buttons: tuple[str, ...] = ()
    message_id: int | None = None

    def as_plain_text(self) -> str:
        if not self.buttons:
            return self.text
        lines = [self.text] + [f"{i}. {label}" for i, label in enumerate(self.buttons, 1)]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message for a channel to send now: taken from an outbox row by the dispatcher."""

    outbox_id: int
    dealer_id: int
    channel: Channel
    address: str
    text: str
    kind: str = "reply"
    data: dict[str, Any] = field(default_factory=dict)


def localized(entry: dict[str, str], lang: str | None, **values: str) -> str:
    """One text of a {language: text} table in the owner's language (Chinese when unknown), filled in."""
    return entry.get(lang or "zh", entry["zh"]).format(**values)
