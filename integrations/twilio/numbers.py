"""Phone numbers as one string per phone: E.164, read with libphonenumber (default region CN).

An owner's number reaches us as 13800138000, 138-0013-8000, +86 138 0013 8000 or 008613800138000;
stored as any of those it would be four owners. Everything that keys on a number (the SMS
identity, a customer's phone, the opt-out truth) uses `e164`.
"""
from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "CN"


def e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The number in E.164 (+8613800138000), or None when it is not a possible phone number."""
    text = (raw or "").strip()
    if not text:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_mobile(number: str) -> bool:
    """Whether an E.164 number is a mobile (or could be): landlines cannot receive SMS."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    kind = phonenumbers.number_type(parsed)
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
