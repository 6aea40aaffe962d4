"""Odometer readings: 3万公里, 3.5w km, 两万五千公里, 跑了2万5, 行驶里程12345, 30,000 miles.

Values are whole kilometres. Miles ("30,000 miles", "3万英里") are converted (x 1.609344,
rounded) because the service schedules are in km. A number counts as mileage only with a
distance unit, after an odometer word (跑了, 开了, 行驶, 里程, 表显), or as "3万(的)保养";
"花了3万" is money, not distance.
"""
from __future__ import annotations

import re

from nlu.entities.plates import fold_width
from nlu.parse import Entity

KM_PER_MILE = 1.609344
MAX_KM = 2_000_000  # beyond any odometer: a typo or not a distance at all

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "k": 1000, "万": 10000, "w": 10000}

_AR = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?)"
_CN = r"[零〇一二两三四五六七八九十百千]+"
_NUM = rf"(?:{_AR}|{_CN})"
# 3万, 3.5w, 2万5, 2万5千, 两万五千, 30k, 5千, 1万2000
_AMOUNT = rf"{_NUM}(?:\s?(?:万|w|k|千)(?:{_NUM}千?)?)?"
# a number must not start inside another number or a word (a VIN, an order number)
_LEFT = r"(?<![A-Za-z0-9.,])"
# and must end where the number ends, so "1000块" cannot shrink to "100"
_RIGHT = r"(?![0-9.,零〇一二两三四五六七八九十百千万])"
_MORE = r"(?:多|余|来)?"
_UNIT = r"(?P<unit>公里|千米|kms?\b|kilomet(?:er|re)s?\b|英里|miles?\b|mi\b)"

_WITH_UNIT = re.compile(rf"{_LEFT}(?P<amount>{_AMOUNT}){_MORE}\s?{_UNIT}", re.ASCII | re.IGNORECASE)
_WITH_CONTEXT = re.compile(
    r"(?:跑了|开了|行驶(?:里程)?|里程(?:数|表)?|表显|已跑)\s?(?:是|有|为|到|了|[:：])?\s?"
    r"(?:大概|大约|约|差不多|快|将近|接近|才)?\s?"
    rf"(?P<amount>{_AMOUNT}){_RIGHT}(?P<more>{_MORE})"
    # durations and counts are not distances: 开了3年, 跑了两趟
    r"(?!\s?(?:年|个|天|次|小时|分钟|月|周|趟|元|块|辆|%))",
    re.ASCII | re.IGNORECASE,
)
# "3万保养", "做个3万的保养": the service interval, named by its mileage
_BEFORE_SERVICE = re.compile(
    rf"{_LEFT}(?P<amount>{_NUM}\s?(?:万|w|k)){_RIGHT}(?=\s?(?:公里)?(?:的|次)?(?:大|小)?保养)",
    re.ASCII | re.IGNORECASE,
)
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[零〇一二两三四五六七八九]|[十百千万wk]", re.IGNORECASE)
_MONEY_HINTS = ("花", "钱", "价", "费", "块", "元", "¥", "￥")


def parse_amount(raw: str) -> float | None:
    """Returns the number written in Arabic or Chinese numerals with 十百千万/w/k multipliers."""
    total = 0.0  # whole 万 sections so far
    section = 0.0  # below 万
    cur: float | None = None
    cur_is_single = False  # one digit right after a unit: 2万5 means 25000, 两千五 means 2500
    last_unit = 0
    zero_seen = False
    for token in _TOKEN.findall(raw.replace(",", "").lower()):
        if token in _UNITS:
            unit = _UNITS[token]
            if unit == 10000:
                total += (section + (cur if cur is not None else 0) or 1) * unit
                section = 0
            else:
                section += (cur if cur is not None else 1) * unit
            cur, cur_is_single, last_unit, zero_seen = None, False, unit, False
        elif token in _CN_DIGITS:
            digit = _CN_DIGITS[token]
            zero_seen = zero_seen or digit == 0
            # 一二三四五 read digit by digit
            cur_is_single = cur is None
            cur = digit if cur is None else cur * 10 + digit
        else:
            cur, cur_is_single = float(token), len(token) == 1
    if cur is not None:
        if cur_is_single and last_unit >= 10 and not zero_seen:
            cur *= last_unit // 10
        section += cur
    value = total + section
    return value if value > 0 else None


def _to_km(amount: str, unit: str | None) -> int | None:
    value = parse_amount(amount)
    if value is None:
        return None
    if unit and unit.lower() in {"英里", "mile", "miles", "mi"}:
        value *= KM_PER_MILE
    km = round(value)
    return km if 0 < km <= MAX_KM else None


def _looks_like_money(text: str, start: int) -> bool:
    return any(hint in text[max(0, start - 3) : start] for hint in _MONEY_HINTS)


def extract_mileage(text: str) -> list[Entity]:
    """Returns every odometer reading in the text, value in whole km."""
    if not text:
        return []
    folded = fold_width(text)
    found: list[Entity] = []

    def add(start: int, end: int, km: int | None, confidence: float) -> None:
        if km is None or any(e.start < end and start < e.end for e in found):
            return
        found.append(Entity("mileage", km, start, end, text[start:end], confidence=confidence))

    # the most explicit form first, so a context match cannot claim its number
    for match in _WITH_UNIT.finditer(folded):
        km = _to_km(match.group("amount"), match.group("unit"))
        # "还有2公里" is a distance to somewhere, rarely an odometer: keep it, but unsure
        add(match.start(), match.end(), km, 1.0 if km is None or km >= 100 else 0.5)
    for match in _WITH_CONTEXT.finditer(folded):
        km = _to_km(match.group("amount"), None)
        # "开了3" alone is too small to be an odometer: probably not a distance at all
        if km is not None and km >= 100:
            add(match.start("amount"), match.end("more"), km, 0.9)
    for match in _BEFORE_SERVICE.finditer(folded):
        if not _looks_like_money(folded, match.start()):
            add(match.start(), match.end(), _to_km(match.group("amount"), None), 0.8)
    found.sort(key=lambda e: e.start)
    return found
