"""The few owner-facing texts only the WeChat channel needs, in Chinese and English.

They live here, not in the flows' templates: they answer WeChat message kinds (a voice message
the speech recognition could not read, a follow, a picture) that never reach the flows.
"""
from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "voice_unrecognised": {
        "zh": "抱歉，没有听清您的语音。请直接输入文字，或者再说一遍。",
        "en": "Sorry, we could not make out your voice message. Please type it, or try again.",
    },
    "welcome": {
        "zh": "您好，欢迎关注{dealer}！您可以直接发消息给我们：预约保养、道路救援、查询车辆，或回复“人工”联系客服。",
        "en": "Welcome to {dealer}! Message us any time to book a service, get roadside help, check your car, "
        "or reply \"agent\" to talk to our staff.",
    },
    "image_received": {
        "zh": "已收到您的图片，我们的客服会尽快查看。",
        "en": "We have received your picture; our staff will look at it soon.",
    },
    "link_received": {
        "zh": "已收到您分享的链接，我们的客服会尽快查看。",
        "en": "We have received your link; our staff will look at it soon.",
    },
}


def text(key: str, lang: str | None, **values: str) -> str:
    """Returns the text in the owner's language (Chinese when unknown), filled in."""
    entry = TEXTS[key]
    return entry.get(lang or "zh", entry["zh"]).format(**values)
