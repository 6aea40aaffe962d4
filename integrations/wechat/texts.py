"""The few owner-facing texts only the WeChat channel needs, in Chinese and English.

They live here, not in the flows' templates: they answer WeChat message kinds (a voice message
the speech recognition could not read, a follow, a picture) that never reach the flows.
"""
from __future__ import annotations

from bot.messages import localized

TEXTS: dict[str, dict[str, str]] = {
    "voice_unrecognised": {
        "zh": "抱歉，没有听清您的语音。请直接输入文字，或者再说一遍。",
        "en": "Sorry, we could not make out your voice message. Please type it, or try again.",
    },
    "welcome": {
        "zh": "您好，欢迎关注{dealer}！您可以直接发消息给我们：预约保养、道路救援、查询车辆，或回复“人工”联系客服。"
        "回复“绑定”并验证手机号，即可把微信与您的车主档案关联，保养提醒会通过微信发给您。",
        "en": "Welcome to {dealer}! Message us any time to book a service, get roadside help, check your car, "
        "or reply \"agent\" to talk to our staff. Reply \"bind\" and confirm your phone number to link this "
        "WeChat to your owner record, so reminders come here.",
    },
    "image_received": {
        "zh": "已收到您的图片，我们的客服会尽快查看。",
        "en": "We have received your picture; our staff will look at it soon.",
    },
    "link_received": {
        "zh": "已收到您分享的链接，我们的客服会尽快查看。",
        "en": "We have received your link; our staff will look at it soon.",
    },
    # account binding (integrations/wechat/binding.py)
    "bind_confirmed": {
        "zh": "{name}，您的微信已绑定，以后保养提醒会通过微信发给您。",
        "en": "{name}, your WeChat is now linked to your account: we will send your service reminders here.",
    },
    "bind_scene_invalid": {
        "zh": "抱歉，这个二维码无法识别或已失效，没有完成绑定。如需绑定，请回复“绑定”，或联系您的服务顾问。",
        "en": "Sorry, we could not read this QR code, so nothing was linked. Reply \"bind\" to link your account, "
        "or ask your service advisor.",
    },
    "bind_ask_phone": {
        "zh": "好的，请发送您在{dealer}登记的手机号码，我们会发一条短信验证码给您。（回复“取消”可退出）",
        "en": "Sure. Please send the mobile number you registered with {dealer}; we will text you a code. "
        "(Reply \"cancel\" to stop.)",
    },
    "bind_phone_invalid": {
        "zh": "这个号码好像不是有效的手机号，请重新输入11位手机号码。（回复“取消”可退出）",
        "en": "That does not look like a valid mainland mobile number. Please send your 11-digit number. "
        "(Reply \"cancel\" to stop.)",
    },
    "bind_code_sent": {
        "zh": "验证码已通过短信发送到尾号{last4}的手机，10分钟内有效，请直接回复6位验证码。",
        "en": "We have texted a code to the number ending in {last4}. It is valid for 10 minutes: please reply with "
        "the 6 digits.",
    },
    "bind_code_wrong": {
        "zh": "验证码不正确，请再试一次（还可以尝试{left}次）。",
        "en": "That code is not right. Please try again ({left} tries left).",
    },
    "bind_code_expired": {
        "zh": "验证码已过期，请重新发送您的手机号码，我们会发一个新的验证码。",
        "en": "That code has expired. Please send your mobile number again and we will text you a new one.",
    },
    "bind_too_many": {
        "zh": "验证码错误次数过多，请重新发送您的手机号码获取新的验证码。",
        "en": "Too many wrong codes. Please send your mobile number again to get a new one.",
    },
    "bind_not_found": {
        "zh": "抱歉，没有找到这个手机号的车主记录。您可以换一个号码再试，或回复“人工”请客服帮您查询。",
        "en": "Sorry, we found no owner record with this number. You can try another number, "
        "or reply \"agent\" and our staff will look it up.",
    },
    "bind_ambiguous": {
        "zh": "这个手机号需要客服为您核对后绑定，请回复“人工”联系客服。",
        "en": "Our staff need to check this number with you before linking it. Please reply \"agent\".",
    },
    "bind_rate_limited": {
        "zh": "验证请求太频繁了，请稍后再试，或回复“人工”联系客服。",
        "en": "Too many attempts for now. Please try again later, or reply \"agent\" to talk to our staff.",
    },
    "bind_cancelled": {
        "zh": "好的，已取消绑定。",
        "en": "OK, linking is cancelled.",
    },
    # the SMS itself: mainland SMS templates are registered in Chinese, so it is sent as such
    "bind_sms": {
        "zh": "【{dealer}】您的绑定验证码是{code}，10分钟内有效。",
        "en": "[{dealer}] Your verification code is {code}. It is valid for 10 minutes.",
    },
}


def text(key: str, lang: str | None, **values: str) -> str:
    """Returns the text in the owner's language (Chinese when unknown), filled in."""
    return localized(TEXTS[key], lang, **values)
