"""The few owner-facing texts only the SMS channel needs, in Chinese and English.

They answer what never reaches the flows: the carriers' keywords (退订, STOP, 订阅, HELP) and a
picture with no words. The signature (【店名】) is added when the text is sent, not here.
"""
from __future__ import annotations

from bot.messages import localized

TEXTS: dict[str, dict[str, str]] = {
    "opt_out": {
        "zh": "您已退订{dealer}的短信，今后不会再收到我们的短信。如需恢复，请回复“订阅”。",
        "en": "You have been unsubscribed from {dealer} text messages and will receive no more. Reply START to resubscribe.",
    },
    "opt_in": {
        "zh": "您已重新订阅{dealer}的短信提醒。回T退订。",
        "en": "You are subscribed to {dealer} text messages again. Reply STOP to opt out.",
    },
    "help": {
        "zh": "{dealer}客服：请致电{phone}，或直接回复短信留言。回T退订。",
        "en": "{dealer}: call us on {phone}, or reply to this message. Reply STOP to opt out.",
    },
    "media_received": {
        "zh": "已收到您发来的图片，我们的客服会尽快查看。",
        "en": "We received your picture; a member of our staff will look at it shortly.",
    },
}


def text(key: str, lang: str | None, **values: str) -> str:
    """Returns the text in the owner's language (Chinese when unknown), filled in."""
    return localized(TEXTS[key], lang, **values)
