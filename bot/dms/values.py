"""One cell of a DMS export read as what it means: a date, a phone number, a plate, a VIN, a tier.

Each reader takes the cell's text and returns the value, None for an empty cell, or raises
`Invalid` with the reason in plain words (Chinese first, then English). DMS data varies from
dealer to dealer and export to export, so readers accept every spelling a DMS or Excel produces
for a value that is still unambiguous, and refuse only what cannot be read safely.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

import phonenumbers

from integrations.twilio.numbers import e164
from nlu.entities.plates import extract_plates, fold_width


@dataclass
class Invalid(Exception):
    """A cell that cannot be used, and why (shown to the dealer's staff in the reject report)."""

    code: str
    zh: str
    en: str

    @property
    def reason(self) -> str:
        return f"{self.zh} / {self.en}"


def clean(raw: str | None) -> str:
    """Returns the cell without padding and without Excel's keep-as-text wrappers (="00123", '00123)."""
    text = (raw or "").strip()
    if not text or (text[0] not in "='\u3000\ufeff" and text[-1] not in "\u3000\ufeff"):
        return text  # the usual cell, checked cheaply: an import reads this a million times
    text = text.strip("\u3000\ufeff").strip()
    # DMS exports write ="00123" so Excel keeps leading zeros; some prefix an apostrophe
    if len(text) >= 3 and text.startswith('="') and text.endswith('"'):
        text = text[2:-1].strip()
    if text.startswith("'"):
        text = text[1:].strip()
    return text


def too_long(text: str, limit: int) -> None:
    """Refuses text longer than its column holds (PostgreSQL would refuse it; SQLite would not)."""
    if len(text) > limit:
        raise Invalid("too_long", f"超过{limit}个字符", f"longer than {limit} characters")


# -- phone numbers ---------------------------------------------------------------------------------

# one cell sometimes holds two numbers: 13800138000/13900139000, 13800138000；020-88886666
_PHONE_SPLIT = re.compile(r"[/,，;；、|]")


def phone(raw: str) -> str | None:
    """The first phone number in the cell in E.164 (+8613800138000)."""
    text = fold_width(clean(raw))
    if not text:
        return None
    for part in _PHONE_SPLIT.split(text):
        # Excel turns a number column into 13800138000.0
        number = e164(part.strip().removesuffix(".0"))
        # e164 keeps any *possible* number (12345 could be a short local one); a DMS record
        # must hold a number that can actually be dialled
        if number is not None and _dialable(number):
            return number
    raise Invalid("bad_phone", f"手机号码无效：{text!r}", f"not a phone number: {text!r}")


def _dialable(number: str) -> bool:
    # most numbers are Chinese: build those directly rather than parse the string a second time
    parsed = (
        phonenumbers.PhoneNumber(country_code=86, national_number=int(number[3:]))
        if number.startswith("+86")
        else phonenumbers.parse(number, None)
    )
    return phonenumbers.is_valid_number(parsed)


# -- licence plates and VINs ---------------------------------------------------------------------

NO_PLATE = {"无", "无牌", "未上牌", "暂无", "新车", "临牌", "临时牌照", "-", "/", "null", "none", "n/a"}


def plate(raw: str) -> str | None:
    """The plate as the bot stores it: 粤B12345, 粤BD12345 (new energy), upper case, no separators."""
    text = clean(raw)
    if not text:
        return None
    if text.lower() in NO_PLATE:
        raise Invalid("no_plate", f"车辆尚未上牌：{text!r}", f"the car has no plate yet: {text!r}")
    # one plate, and nothing but the plate (the same test as valid_plate, with one regex pass)
    found = extract_plates(text)
    if len(found) != 1 or found[0].start != 0 or found[0].end != len(text):
        raise Invalid("bad_plate", f"车牌号无效：{text!r}", f"not a licence plate: {text!r}")
    return found[0].value


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
# China (GB 16735) and North America (1-5) make position 9 a check digit; Europe, Japan and
# Korea do not, and imported cars carry their home country's VIN, so only these are checked
_CHECKED_REGIONS = ("L", "1", "2", "3", "4", "5")
_VIN_NOISE = re.compile(r"[\s\-]")
_VIN_CHARACTERS = re.compile(r"[A-HJ-NPR-Z0-9]{17}")


def vin_check_digit(vin: str) -> str:
    """The check digit (position 9) a 17-character VIN must carry: 0-9 or X."""
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    return "X" if total == 10 else str(total)


def vin(raw: str) -> str | None:
    """The VIN upper case without spaces; 17 characters, no I, O or Q, the check digit where one applies."""
    text = _VIN_NOISE.sub("", fold_width(clean(raw))).upper()
    if not text:
        return None
    if len(text) != 17:
        raise Invalid("bad_vin", f"车架号应为17位（{text!r}为{len(text)}位）", f"a VIN has 17 characters, {text!r} has {len(text)}")
    if not _VIN_CHARACTERS.fullmatch(text):
        raise Invalid(
            "bad_vin", f"车架号只能含数字和除I、O、Q外的字母：{text!r}", f"a VIN has only digits and letters other than I, O, Q: {text!r}"
        )
    if text.startswith(_CHECKED_REGIONS) and text[8] != (expected := vin_check_digit(text)):
        raise Invalid(
            "bad_vin_check",
            f"车架号校验位不符：{text!r}（第9位应为{expected}）",
            f"VIN check digit is wrong: {text!r} (position 9 should be {expected})",
        )
    return text


# -- dates and times -----------------------------------------------------------------------------

_DATE = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"|(?P<cy>\d{4})(?P<cm>\d{2})(?P<cd>\d{2})"
)
_TIME = re.compile(
    r"(?P<h>\d{1,2})\s*[:：时点]\s*(?P<mi>\d{1,2})\s*分?(?:\s*[:：]?\s*(?P<s>\d{1,2})(?:\.\d+)?\s*秒?)?"
)
_COMPACT_TIME = re.compile(r"(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})?")
# DMS placeholders for "no date": 1900-01-01, Excel's day zero, 9999-12-31 ("never expires")
_NO_DATE_BEFORE = date(1901, 1, 1)
_NO_DATE_FROM = date(9999, 1, 1)


def _bad_date(text: str) -> Invalid:
    return Invalid("bad_date", f"日期无法识别：{text!r}", f"not a date: {text!r}")


@lru_cache(maxsize=1 << 16)  # an export repeats a few thousand distinct dates
def _split(raw: str) -> tuple[str, date | None, time | None]:
    """The cleaned text, its date and its time of day (None when it has none)."""
    text = fold_width(clean(raw))
    if not text:
        return text, None, None
    match = _DATE.match(text)
    if match is None:
        raise _bad_date(text)
    y, m, d = (match.group("y"), match.group("m"), match.group("d")) if match.group("y") else (
        match.group("cy"), match.group("cm"), match.group("cd"))
    try:
        day = date(int(y), int(m), int(d))
    except ValueError:
        raise _bad_date(text) from None
    rest = text[match.end():].strip().lstrip("T").strip()
    if not rest:
        return text, day, None
    clock = (_COMPACT_TIME if match.group("cy") else _TIME).fullmatch(rest)
    if clock is None:
        raise _bad_date(text)
    try:
        at = time(int(clock.group("h")), int(clock.group("mi")), int(clock.group("s") or 0))
    except ValueError:
        raise _bad_date(text) from None
    return text, day, at


def _in_range(text: str, day: date) -> date | None:
    if day < _NO_DATE_BEFORE or day >= _NO_DATE_FROM:
        return None
    if day.year > 2100:
        raise _bad_date(text)
    return day


def day(raw: str) -> date | None:
    """A date written 2026-11-23, 2026/11/23, 2026.11.23, 20261123 or 2026年11月23日 (a time after it is ignored)."""
    text, found, _ = _split(raw)
    return None if found is None else _in_range(text, found)


def moment(raw: str, zone: ZoneInfo) -> datetime | None:
    """A local date and time in the dealer's timezone (2026-11-23 14:30[:00]), as aware UTC; a bare date is midnight."""
    text, found, at = _split(raw)
    if found is None or _in_range(text, found) is None:
        return None
    return datetime.combine(found, at or time(0), zone).astimezone(ZoneInfo("UTC"))


def not_after(found: date | None, today: date, *, what_zh: str, what_en: str) -> date | None:
    """Refuses a date later than today (a birthday, a date the car came in)."""
    if found is not None and found > today:
        raise Invalid("future_date", f"{what_zh}晚于今天：{found.isoformat()}", f"{what_en} is in the future: {found.isoformat()}")
    return found


# -- tiers and languages -------------------------------------------------------------------------


_TIER_SUFFIX = re.compile(r"(级|类|等)?(客户)?$")


def tier(raw: str) -> str | None:
    """A, B or C; also a, A级, A类, A类客户."""
    text = fold_width(clean(raw)).upper()
    if not text:
        return None
    letter = _TIER_SUFFIX.sub("", text).strip()
    if letter not in ("A", "B", "C"):
        raise Invalid("bad_tier", f"客户等级应为A、B或C：{text!r}", f"tier must be A, B or C: {text!r}")
    return letter


_LANGUAGES = {"zh": "zh", "中文": "zh", "汉语": "zh", "普通话": "zh", "chinese": "zh", "zh-cn": "zh", "cn": "zh",
              "en": "en", "英文": "en", "英语": "en", "english": "en", "en-us": "en", "en-gb": "en"}


def language(raw: str) -> str | None:
    """zh or en."""
    text = clean(raw).lower()
    if not text:
        return None
    if text not in _LANGUAGES:
        raise Invalid("bad_language", f"语言应为中文或英文：{text!r}", f"language must be zh or en: {text!r}")
    return _LANGUAGES[text]


# -- numbers -------------------------------------------------------------------------------------


def _decimal(raw: str, units: re.Pattern[str]) -> tuple[str, Decimal | None]:
    text = fold_width(clean(raw))
    if text.isascii() and text.isdigit():
        return text, Decimal(text)
    bare = units.sub("", text)
    if not bare:
        return text, None
    scale = Decimal(10000) if bare.endswith("万") else Decimal(1)
    try:
        value = Decimal(bare.removesuffix("万")) * scale
    except InvalidOperation:
        raise Invalid("bad_number", f"不是数字：{text!r}", f"not a number: {text!r}") from None
    if not value.is_finite():
        raise Invalid("bad_number", f"不是数字：{text!r}", f"not a number: {text!r}")
    if value < 0:
        raise Invalid("negative", f"不能为负数：{text!r}", f"cannot be negative: {text!r}")
    return text, value


# separators and units a number cell may carry
_KM = re.compile(r"[\s,，]|km|公里|千米", re.IGNORECASE)
_YUAN = re.compile(r"[\s,，]|¥|￥|元|rmb|cny", re.IGNORECASE)
MAX_MILEAGE = 2_000_000


def mileage(raw: str) -> int | None:
    """Kilometres: 12345, 12,345, 12345km, 12345公里, 1.2万."""
    text, value = _decimal(raw, _KM)
    if value is None:
        return None
    if value > MAX_MILEAGE:
        raise Invalid("bad_number", f"里程不合理：{text!r}", f"implausible mileage: {text!r}")
    return int(value.to_integral_value())


MAX_AMOUNT_CENTS = 2**31 - 1  # the column is a 32-bit integer


def amount_cents(raw: str) -> int | None:
    """Yuan to cents: 1280, 1,280.50, ¥1280.5, 1280元, RMB 1280."""
    text, value = _decimal(raw, _YUAN)
    if value is None:
        return None
    cents = int((value * 100).to_integral_value())
    if cents > MAX_AMOUNT_CENTS:
        raise Invalid("bad_number", f"金额不合理：{text!r}", f"implausible amount: {text!r}")
    return cents
