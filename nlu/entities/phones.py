"""Phone numbers: mainland mobiles, landlines with an area code, 400/800 service lines."""
from __future__ import annotations

import re

import phonenumbers

from nlu.entities.plates import fold_width
from nlu.parse import Entity

REGION = "CN"

_SEP = r"[ \-]?"
# +86 / 0086 / (+86) / 86- before a number; bare 86 only with a separator or before a 1
_COUNTRY = r"(?:\(?(?:\+|00)\s?86\)?[ \-]?|86[ \-]?(?=1))"
_CANDIDATE = re.compile(
    # not glued to letters or digits: a VIN, an order number, a longer digit run
    r"(?<![A-Za-z0-9+])(?:"
    # mobile: 1[3-9]x xxxx xxxx, grouped 3-4-4 or not at all
    rf"(?P<mobile>{_COUNTRY}?1[3-9]\d{_SEP}\d{{4}}{_SEP}\d{{4}})"
    # 400/800 service numbers: 400-800-1234
    rf"|(?P<service>[48]00{_SEP}\d{{3}}{_SEP}\d{{4}})"
    # landline: 020-12345678, (020)12345678, 0755 1234567, +86 20 12345678
    rf"|(?P<landline>(?:{_COUNTRY}\(?0?|\(?0)[1-9]\d{{1,2}}\)?{_SEP}\d{{7,8}})"
    r")(?![A-Za-z0-9])"
    # a number followed by a distance unit is mileage, whatever its length
    r"(?!\s*(?:公里|千米|km|miles?))",
    re.ASCII | re.IGNORECASE,
)


def _normalize(kind: str, raw: str) -> tuple[str, float] | None:
    """Returns the E.164 form and a confidence, or None when it is no phone number."""
    digits = re.sub(r"[^\d+]", "", raw)
    try:
        number = phonenumbers.parse(digits, REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), 1.0
    if kind == "service":
        # a service line the metadata does not know yet: the digits are still dialable
        return re.sub(r"\D", "", raw), 0.8
    if kind == "landline" and number is not None and phonenumbers.is_possible_number(number):
        # 0755-1234567: a 7-digit local number where the metadata wants 8; owners do mistype
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), 0.6
    return None


def extract_phones(text: str) -> list[Entity]:
    """Returns every phone number in the text, value in E.164 ("+8613812345678")."""
    if not text:
        return []
    folded = fold_width(text)
    found = []
    for match in _CANDIDATE.finditer(folded):
        kind = match.lastgroup or "mobile"
        normalized = _normalize(kind, match.group())
        if normalized is None:
            continue
        value, confidence = normalized
        start, end = match.span()
        found.append(Entity("phone", value, start, end, text[start:end], confidence=confidence))
    return found
