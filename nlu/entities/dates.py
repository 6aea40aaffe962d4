"""Dates and times as owners write them: 明天下午三点, 下周三, 15号上午, 12月5日, tomorrow 3pm.

Everything is resolved against a given `now` (aware, in the dealer's timezone), so the same
message always reads the same way in tests and in a replay. The value is a plain dict:

    {"date": "2026-11-24" | None, "time": "15:30" | None, "part_of_day": "afternoon" | None,
     "end_date": "2026-11-29" | None, "grain": "minute" | "hour" | "day" | "week"}

Reading rules worth knowing (the flow, not this module, decides what is acceptable):

- Weeks start on Monday. 这周三 is Wednesday of this week (possibly past), 下周三 of next week,
  a bare 周三 the next Wednesday on or after today. 周末/这周末 is Sat..Sun of this week (just
  today when today is Sunday), 下周 is next Mon..Sun; ranges carry "end_date" and grain "week".
- 3号 is this month unless that day has passed (then next month); 12月5日 is this year unless
  it has passed (then next year). Past relative days (昨天, 上周三) are returned as they are.
- Hours: 下午/晚上 add 12 to 1..11, 中午 adds 12 to 1..10, 晚上12点 is 00:00 of the same date,
  凌晨 keeps the hour (12 -> 0). A bare hour with no part of day anywhere: 1..6 reads as
  afternoon (三点 -> 15:00; nobody books a service at 3 am), 7..12 as said (八点 -> 08:00).
  Forms that already fix the clock keep it: 15:30, 03:30, 3pm.
- part_of_day records what was said (早上/上午 -> "morning" ...); a bare 三点 has part None.
- A lone Chinese 一点 is usually "a bit" (便宜一点): it only counts next to a date (明天一点).
  m/d and m-d (12/5) count only next to a time word or standing alone between spaces or
  punctuation, so "1/2的价格" is not a date.
- Time ranges (3点到5点) give two entities; holidays (国庆) and 现在/马上 are not read.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from nlu.parse import Entity

log = logging.getLogger(__name__)

# owners paste whole conversations; dates sit near the start of what matters
MAX_SCAN_CHARS = 2000

# ------------------------------------------------------------------------------------------
# folding: one character in, one character out, so offsets in the folded text are offsets
# in the original

# a few traditional forms (HK/TW customers) that matter to the patterns below
_TRADITIONAL = str.maketrans("點號週禮後兩鐘個這時", "点号周礼后两钟个这时")
_fold_cache: dict[str, str] = {}


def _fold_char(char: str) -> str:
    folded = _fold_cache.get(char)
    if folded is None:
        nfkc = unicodedata.normalize("NFKC", char).lower()
        # NFKC can expand (㏂ -> "am", ½ -> "1⁄2"): keep those as they are, lengths must hold
        folded = nfkc if len(nfkc) == 1 else char
        if len(_fold_cache) < 8192:
            _fold_cache[char] = folded
    return folded


def fold(text: str) -> str:
    """Returns the text as the patterns read it (NFKC, lower case), same length as the input."""
    if text.isascii():
        return text.lower()
    return "".join(map(_fold_char, text)).translate(_TRADITIONAL)


# ------------------------------------------------------------------------------------------
# Chinese numerals

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}


def cn_number(s: str) -> int | None:
    """Returns the value of 5, 15, 十五, 二十五, 廿五, 两, 一百零五; None for anything else."""
    if not s:
        return None
    if s.isascii():
        return int(s) if s.isdigit() else None
    s = s.replace("廿", "二十")
    total = 0
    if "百" in s:
        hundreds, _, s = s.partition("百")
        value = _CN_DIGIT.get(hundreds or "一")
        if value is None:
            return None
        total += value * 100
        s = s.lstrip("零〇")
    elif len(s) > 1 and s[0] in "零〇":
        s = s[1:]  # 三点零五
    if "十" in s:
        tens, _, units = s.partition("十")
        tens_value = _CN_DIGIT.get(tens) if tens else 1
        units_value = _CN_DIGIT.get(units) if units else 0
        if tens_value is None or units_value is None:
            return None
        return total + tens_value * 10 + units_value
    if not s:
        return total
    value = _CN_DIGIT.get(s)
    return None if value is None else total + value


# ------------------------------------------------------------------------------------------
# tokens: pieces of a date or a time; neighbouring pieces merge into one entity


@dataclass(slots=True)
class _Token:
    start: int
    end: int
    day: date | None = None
    end_day: date | None = None
    part: str | None = None  # "early" (凌晨) reads the clock differently, shows as "morning"
    hour: int | None = None
    minute: int = 0
    minute_said: bool = False
    fixed: bool = False  # the hour is already on the 24 h clock: 15:30, 03:30, 3pm
    weak: str | None = None  # "slash": 12/5; "yidian": 一点; each needs company to count

    def slots(self) -> set[str]:
        return {name for name, filled in
                (("date", self.day), ("part", self.part), ("clock", self.hour is not None))
                if filled}


_Handler = Callable[[re.Match[str], str, date], "_Token | None"]

_NUM = r"(?:[0-9]{1,2}|[零〇一二两三四五六七八九十廿]{1,3})"

# ------------------------------------------------------------------------------------------
# relative days: 今天, 明早, 大后天, tomorrow, tonight

_DAY_OFFSET = {"大前": -3, "前": -2, "昨": -1, "今": 0, "明": 1, "后": 2, "大后": 3}
_DAY_SUFFIX_PART = {"早": "morning", "晨": "morning", "晚": "evening", "夜": "evening"}

_REL_DAY_CN = re.compile(
    # 目前天气 and 以后天天 are not days: the common words that end in 前/后
    r"(?P<rel>大前|大后|(?<![目提以之事从面眼当])前|昨|今|明|(?<![以之然最背])后)(?:天|日|儿个|儿|个)"
    r"|(?P<rel2>昨|今|明)(?P<suffix>早|晨|晚|夜)(?:上|里)?"
)


def _rel_day_cn(m: re.Match[str], text: str, today: date) -> _Token | None:
    rel = m.group("rel") or m.group("rel2")
    # "前后天" / "先后" aside, 后天 and 前天 in running text are days; 后日/前日/后个 are not
    if rel in ("前", "后", "大前", "大后") and not m.group(0).endswith("天"):
        return None
    part = _DAY_SUFFIX_PART.get(m.group("suffix") or "")
    return _Token(m.start(), m.end(), day=today + timedelta(_DAY_OFFSET[rel]), part=part)


_REL_DAY_EN = re.compile(
    r"\b(?:(?P<dat>(?:the )?day after (?:tomorrow|tmrw?))|(?P<word>today|tonight|tomorrow|tomorow"
    r"|tmrw|tmr|yesterday)|this (?P<part>morning|afternoon|evening))\b"
)
_EN_DAY_OFFSET = {"today": 0, "tonight": 0, "tomorrow": 1, "tomorow": 1, "tmrw": 1, "tmr": 1,
                  "yesterday": -1}


def _rel_day_en(m: re.Match[str], text: str, today: date) -> _Token:
    if m.group("dat"):
        return _Token(m.start(), m.end(), day=today + timedelta(2))
    if m.group("part"):
        return _Token(m.start(), m.end(), day=today, part=m.group("part"))
    word = m.group("word")
    part = "evening" if word == "tonight" else None
    return _Token(m.start(), m.end(), day=today + timedelta(_EN_DAY_OFFSET[word]), part=part)


_IN_DAYS = re.compile(
    r"(?<![0-9.])(?P<n>[0-9]{1,2}|[一二两三四五六七八九十]{1,2})天(?:以|之)?后(?!天)"
    r"|\bin (?P<en>[0-9]{1,2}|a|one|two|three|four|five|six|seven) days?\b"
)
_EN_COUNT = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def _in_days(m: re.Match[str], text: str, today: date) -> _Token | None:
    count = cn_number(m.group("n")) if m.group("n") else _EN_COUNT.get(m.group("en"), None)
    if count is None and m.group("en"):
        count = int(m.group("en"))
    if count is None:
        return None
    return _Token(m.start(), m.end(), day=today + timedelta(count))


# ------------------------------------------------------------------------------------------
# weeks: 下周三, 这周末, 本周六, 下下周一, 下周, next friday, this weekend

_WEEKDAY_CN = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
               "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_WEEK_SHIFT = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, "下下": 2,
               "last": -1, "this": 0, "next": 1}

_WEEK_CN = re.compile(
    # 马上周末 is "soon it's the weekend", not last weekend
    r"(?:(?P<rel>下下|下|(?<!马)上上|(?<!马)上|这|本)个?)?(?:周|星期|礼拜)"
    # 一周一次 / 每周一次: 周一 followed by 次 is a count, not Monday
    r"(?:(?P<wd>[一二三四五六日天1-7])(?![0-9次遍回趟])|(?P<weekend>末))?"
)


def _monday(day: date) -> date:
    return day - timedelta(day.weekday())


def _week_token(start: int, end: int, today: date, shift: int | None, weekday: int | None,
                weekend: bool) -> _Token:
    """shift None means "no 这/下 said": the next such day on or after today."""
    monday = _monday(today) + timedelta(7 * (shift or 0))
    if weekend:
        saturday, sunday = monday + timedelta(5), monday + timedelta(6)
        if shift in (None, 0) and today == sunday:
            saturday = today  # said on a Sunday, "this weekend" is what is left of it: today
        return _Token(start, end, day=saturday, end_day=sunday)
    if weekday is None:
        return _Token(start, end, day=monday, end_day=monday + timedelta(6))
    if shift is None:
        return _Token(start, end, day=today + timedelta((weekday - today.weekday()) % 7))
    return _Token(start, end, day=monday + timedelta(weekday))


def _week_cn(m: re.Match[str], text: str, today: date) -> _Token | None:
    rel, wd, weekend = m.group("rel"), m.group("wd"), m.group("weekend")
    if not rel and not wd and not weekend:
        return None  # 一周, 周年, 星期: no day said
    shift = _WEEK_SHIFT[rel] if rel else None
    return _week_token(m.start(), m.end(), today, shift, _WEEKDAY_CN.get(wd or ""), bool(weekend))


_WEEKDAY_EN = {"monday": 0, "mon": 0, "tuesday": 1, "tues": 1, "tue": 1, "wednesday": 2, "wed": 2,
               "thursday": 3, "thurs": 3, "thur": 3, "thu": 3, "friday": 4, "fri": 4,
               "saturday": 5, "sat": 5, "sunday": 6, "sun": 6}
_WEEK_EN = re.compile(
    r"(?<!['’])\b(?:(?P<rel>next|this|coming|last) )?(?:(?P<wd>monday|tuesday|wednesday|thursday"
    r"|friday|saturday|sunday|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun)|(?P<what>weekend|week))\b"
)


def _week_en(m: re.Match[str], text: str, today: date) -> _Token | None:
    rel, wd, what = m.group("rel"), m.group("wd"), m.group("what")
    # "sat" and "sun" are words too; "a week" is a length, not a date
    if not rel and (wd in ("sat", "sun") or what == "week"):
        return None
    shift = _WEEK_SHIFT.get(rel or "")  # "coming friday" reads as a bare "friday"
    return _week_token(m.start(), m.end(), today, shift, _WEEKDAY_EN.get(wd or ""),
                       what == "weekend")


# ------------------------------------------------------------------------------------------
# calendar dates: 3号, 十五号, 12月5日, 下个月5号, 2026年12月5日, 2026-12-05, 12/5, dec 5


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_day_of_month(today: date, day: int) -> date | None:
    """This month's day unless it has passed, else the next month that has that day."""
    if not 1 <= day <= 31:
        return None
    year, month = today.year, today.month
    if day < today.day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for _ in range(3):  # 31号 in a 30-day month: the next month with a 31st
        found = _valid(year, month, day)
        if found:
            return found
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _next_month_day(today: date, month: int, day: int) -> date | None:
    """This year's date unless it has passed, else next year's (2月29日: the next leap year)."""
    if _valid(2000, month, day) is None:  # 2000 is a leap year: only truly impossible dates fail
        return None
    for year in range(today.year, today.year + 9):
        found = _valid(year, month, day)
        if found and found >= today:
            return found
    return None


# after 号/日 these make a room, a line, a battery, a duration: 3号线, 五号电池, 三日内
_NOT_A_DAY = (r"(?!线|楼|门|位|车|机|店|口|房|厅|桌|窗|柜|码|电|馆|台|仓|库|厂|键|杆|字|院|区|栋|座|床|包"
              r"|球|样|内|后|前|游|元|之|子|常|期|均|夜|三餐)")

_DAY_OF_MONTH = re.compile(rf"(?<![0-9a-z.月第])(?P<d>{_NUM})[号日]{_NOT_A_DAY}")


def _day_of_month(m: re.Match[str], text: str, today: date) -> _Token | None:
    day = cn_number(m.group("d"))
    found = _next_day_of_month(today, day) if day is not None else None
    return _Token(m.start(), m.end(), day=found) if found else None


_MONTH_REL = re.compile(rf"(?P<rel>下下个?|下个?|这个?|本)月(?P<d>{_NUM})[号日]{_NOT_A_DAY}")
_MONTH_SHIFT = {"本": 0, "这": 0, "这个": 0, "下": 1, "下个": 1, "下下": 2, "下下个": 2}


def _month_rel(m: re.Match[str], text: str, today: date) -> _Token | None:
    day = cn_number(m.group("d"))
    months = today.year * 12 + today.month - 1 + _MONTH_SHIFT[m.group("rel")]
    found = _valid(months // 12, months % 12 + 1, day) if day else None
    return _Token(m.start(), m.end(), day=found) if found else None


_MONTH_DAY_CN = re.compile(
    rf"(?:(?<![0-9])(?P<y>20[0-9]{{2}})\s?年\s?)?(?<![0-9.])(?P<mo>{_NUM})\s?月\s?(?P<d>{_NUM})"
    rf"(?![0-9])\s?(?P<suf>[日号])?"
)
# 12月5 may end there, but not in 一月两次 or 3月15万
_AFTER_BARE_MONTH_DAY = set("次个回遍天年周万千百元块号日点时分")


def _month_day_cn(m: re.Match[str], text: str, today: date) -> _Token | None:
    if not m.group("suf") and text[m.end():m.end() + 1] in _AFTER_BARE_MONTH_DAY:
        return None
    month, day = cn_number(m.group("mo")), cn_number(m.group("d"))
    if month is None or day is None:
        return None
    if m.group("y"):
        found = _valid(int(m.group("y")), month, day)
    else:
        found = _next_month_day(today, month, day)
    end = m.end() if m.group("suf") else m.end("d")  # no trailing space in the span
    return _Token(m.start(), end, day=found) if found else None


_ISO_DATE = re.compile(
    r"(?<![0-9])(?P<y>20[0-9]{2})(?P<sep>[-/.])(?P<mo>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})(?![0-9])"
)


def _iso_date(m: re.Match[str], text: str, today: date) -> _Token | None:
    found = _valid(int(m.group("y")), int(m.group("mo")), int(m.group("d")))
    return _Token(m.start(), m.end(), day=found) if found else None


_SLASH_DATE = re.compile(
    r"(?<![0-9a-z./:+\-])(?P<mo>[0-9]{1,2})[/\-](?P<d>[0-9]{1,2})(?!\.?[0-9])(?![a-z/:+%\-])"
)


def _slash_date(m: re.Match[str], text: str, today: date) -> _Token | None:
    found = _next_month_day(today, int(m.group("mo")), int(m.group("d")))
    # 1/2 is as often a half as a date: it only counts with company (see _keep)
    return _Token(m.start(), m.end(), day=found, weak="slash") if found else None


_MONTHS_EN = {"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
              "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
              "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11,
              "nov": 11, "december": 12, "dec": 12}
_MON = "|".join(sorted(_MONTHS_EN, key=len, reverse=True))
_MONTH_DAY_EN = re.compile(
    rf"\b(?:(?P<mon>{_MON})\.? ?(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?"
    rf"|(?P<d2>[0-9]{{1,2}})(?:st|nd|rd|th)? (?:of )?(?P<mon2>{_MON}))\b(?:,? (?P<y>20[0-9]{{2}})\b)?"
)


def _month_day_en(m: re.Match[str], text: str, today: date) -> _Token | None:
    month = _MONTHS_EN[m.group("mon") or m.group("mon2")]
    day = int(m.group("d") or m.group("d2"))
    if m.group("y"):
        found = _valid(int(m.group("y")), month, day)
    else:
        found = _next_month_day(today, month, day)
    return _Token(m.start(), m.end(), day=found) if found else None


# ------------------------------------------------------------------------------------------
# times of day: 下午三点半, 3点15分, 三点一刻, 15:30, 晚上7点, 中午, 3pm, at 10, friday afternoon

_PARTS_CN = {"凌晨": "early", "清晨": "morning", "早晨": "morning", "早上": "morning",
             "清早": "morning", "一早": "morning", "上午": "morning", "中午": "noon",
             "正午": "noon", "晌午": "noon", "午间": "noon", "下午": "afternoon", "午后": "afternoon",
             "傍晚": "evening", "晚上": "evening", "晚间": "evening", "夜里": "evening",
             "夜间": "evening", "夜晚": "evening", "半夜": "evening", "深夜": "evening"}
# 早 and 晚 alone only count in front of a clock time (早8点); 早点/晚点 mean "earlier/later"
_PARTS_CN_SHORT = {"早": "morning", "晚": "evening"}
_PART_ALT = "|".join(sorted(_PARTS_CN, key=len, reverse=True))

_CLOCK_CN = re.compile(
    rf"(?:(?P<part>{_PART_ALT}|早|晚)\s?的?\s?)?"
    rf"(?:(?<![0-9a-z.:第])(?P<h>{_NUM})(?P<dian>点钟|点|(?<=[0-9])时)"
    rf"(?P<m>半|一刻|三刻|整|过?{_NUM}分?)?"
    r"|(?<![0-9.:])(?P<hh>[0-9]{1,2}):(?P<mm>[0-5][0-9])(?![0-9:]))"
)
# 三点五公里, 3点15万 are decimals
_UNITS = set("万千百元块公里米%折倍个")
# 一点儿, 一点都不, 一点也 are "a bit"
_NOT_A_BIT = re.compile(r"儿|点|都|也|没|不")
# 两点建议, 三点要求 are points made, not hours
_NOT_A_CLOCK = re.compile(r"意见|建议|问题|要求|原因|注意|看法|想法")


def _minutes(said: str) -> int | None:
    if said == "半":
        return 30
    if said == "一刻":
        return 15
    if said == "三刻":
        return 45
    if said == "整":
        return 0
    return cn_number(said.removeprefix("过").removesuffix("分"))


def _stray_minutes(said: str) -> bool:
    """True for 两点一起, 三点五: a lone Chinese digit after 点 is rarely minutes."""
    if said[0].isdigit() or said in ("半", "一刻", "三刻", "整"):
        return False
    if said.startswith("过") or said.endswith("分") or said[0] in "零〇":
        return False
    return "十" not in said and "廿" not in said


def _clock_cn(m: re.Match[str], text: str, today: date) -> _Token | None:
    said_part = m.group("part")
    part = _PARTS_CN.get(said_part or "") or _PARTS_CN_SHORT.get(said_part or "")
    if m.group("hh"):
        hour, minute = int(m.group("hh")), int(m.group("mm"))
        # 15:30 and 03:30 fix the clock; 3:30 is read like 三点半
        fixed = hour > 12 or m.group("hh").startswith("0")
        return _clock_token(m.start(), m.end(), part, hour, minute, True, fixed)
    said_minutes, end = m.group("m"), m.end()
    if said_minutes and text[end:end + 1] in _UNITS:
        return None  # 三点五公里, 3点15万
    if said_minutes and _stray_minutes(said_minutes):
        said_minutes, end = None, m.end("dian")
    if not said_minutes and text[end:end + 1].isdigit():
        return None
    if _NOT_A_CLOCK.match(text, end) and not said_minutes and not said_part:
        return None
    hour = cn_number(m.group("h"))
    minute = _minutes(said_minutes) if said_minutes else 0
    if hour is None or minute is None:
        return None
    weak = None
    if m.group("h") == "一" and not said_minutes:
        if _NOT_A_BIT.match(text, end) or said_part in _PARTS_CN_SHORT:
            return None  # 一点儿, 早一点, 晚一点
        if not said_part:
            weak = "yidian"  # 便宜一点 or 明天一点: decided once its neighbours are known
    minute_said = bool(said_minutes) and said_minutes != "整"
    token = _clock_token(m.start(), end, part, hour, minute, minute_said, hour > 12 or hour == 0)
    if token:
        token.weak = weak
    return token


def _clock_token(start: int, end: int, part: str | None, hour: int, minute: int,
                 minute_said: bool, fixed: bool) -> _Token | None:
    if not 0 <= hour <= 23 or not 0 <= minute <= 59:
        return None
    return _Token(start, end, part=part, hour=hour, minute=minute,
                  minute_said=minute_said, fixed=fixed)


# 早上好 / 下午好 are greetings, 下午茶 is tea
_PART_CN = re.compile(rf"(?:{_PART_ALT})(?!好|茶)")


def _part_cn(m: re.Match[str], text: str, today: date) -> _Token:
    return _Token(m.start(), m.end(), part=_PARTS_CN[m.group(0)])


_AMPM_EN = re.compile(
    r"(?<![0-9a-z.:])(?P<h>[0-9]{1,2})(?::(?P<m>[0-5][0-9]))? ?(?P<ap>a\.?m\.?|p\.?m\.?)(?![a-z])"
)


def _ampm_en(m: re.Match[str], text: str, today: date) -> _Token | None:
    hour = int(m.group("h"))
    if not 1 <= hour <= 12:
        return None
    hour = hour % 12 + (12 if m.group("ap").startswith("p") else 0)
    minute = int(m.group("m") or 0)
    return _clock_token(m.start(), m.end(), None, hour, minute, m.group("m") is not None, True)


_AT_EN = re.compile(
    r"\b(?:at (?P<h>[0-9]{1,2})(?::(?P<m>[0-5][0-9]))?(?![0-9:.%])"
    r"(?! ?(?:km|kms|mi|miles?|dollars?|yuan|rmb|元|块|公里|万|%|a\.?m|p\.?m|o['’]?clock))"
    r"|(?P<h2>[0-9]{1,2}) ?o['’]?clock)\b"
)


def _at_en(m: re.Match[str], text: str, today: date) -> _Token | None:
    hour = int(m.group("h") or m.group("h2"))
    minute = m.group("m")
    fixed = hour > 12 or (m.group("h") or "").startswith("0")
    return _clock_token(m.start(), m.end(), None, hour, int(minute or 0), minute is not None, fixed)


_PART_EN = re.compile(r"(?<!good )\b(?P<w>morning|afternoon|evening|night|noon|midday|midnight)\b")
_PART_EN_NAMES = {"morning": "morning", "afternoon": "afternoon", "evening": "evening",
                  "night": "evening", "noon": "noon", "midday": "noon"}


def _part_en(m: re.Match[str], text: str, today: date) -> _Token:
    word = m.group("w")
    if word == "midnight":
        return _Token(m.start(), m.end(), hour=0, fixed=True)
    if word in ("noon", "midday"):
        # "noon" is a clock time, where 中午 is a stretch of the day
        return _Token(m.start(), m.end(), part="noon", hour=12, fixed=True)
    return _Token(m.start(), m.end(), part=_PART_EN_NAMES[word])


# ------------------------------------------------------------------------------------------
# the scanner

# order breaks ties between matches of the same start and length: earlier rules win
_RULES: tuple[tuple[re.Pattern[str], _Handler], ...] = (
    (_ISO_DATE, _iso_date),
    (_MONTH_DAY_CN, _month_day_cn),
    (_MONTH_REL, _month_rel),
    (_REL_DAY_CN, _rel_day_cn),
    (_IN_DAYS, _in_days),
    (_WEEK_CN, _week_cn),
    (_DAY_OF_MONTH, _day_of_month),
    (_CLOCK_CN, _clock_cn),
    (_PART_CN, _part_cn),
    (_SLASH_DATE, _slash_date),
    (_REL_DAY_EN, _rel_day_en),
    (_WEEK_EN, _week_en),
    (_MONTH_DAY_EN, _month_day_en),
    (_AMPM_EN, _ampm_en),
    (_AT_EN, _at_en),
    (_PART_EN, _part_en),
)

# a date and a time merge across nothing, spaces, 的, a comma, "at", "on", "in the"
_GAP = re.compile(r"[\s,、]*(?:的|at|on|in the|around|about|大概|大约|约)?[\s,、]*")
# a time before a date only in English word order: "3pm tomorrow", "10am on friday"
_GAP_TIME_FIRST = re.compile(r"\s*(?:on\s)?\s*")


def _scan(text: str, today: date) -> list[_Token]:
    """Leftmost-longest tokens over all rules; a rejected match lets the next one through."""
    upcoming = [pattern.search(text) for pattern, _ in _RULES]
    tokens: list[_Token] = []
    while True:
        best_index, best = -1, None
        for index, match in enumerate(upcoming):
            if match is None:
                continue
            if (best is None or match.start() < best.start()
                    or (match.start() == best.start() and match.end() > best.end())):
                best_index, best = index, match
        if best is None:
            return tokens
        pattern, handler = _RULES[best_index]
        token = handler(best, text, today)
        if token is None:
            upcoming[best_index] = pattern.search(text, best.start() + 1)
            continue
        tokens.append(token)
        for index, match in enumerate(upcoming):
            if match is not None and match.start() < token.end:
                upcoming[index] = _RULES[index][0].search(text, token.end)


def _joins(group: list[_Token], token: _Token, text: str) -> bool:
    filled = set().union(*(t.slots() for t in group))
    if filled & token.slots():
        return False  # 明天后天, 3点4点: two things, not one
    gap = text[group[-1].end:token.start]
    if len(gap) > 10:
        return False
    if token.day is not None and "date" not in filled:
        return _GAP_TIME_FIRST.fullmatch(gap) is not None
    return _GAP.fullmatch(gap) is not None


def _group(tokens: list[_Token], text: str) -> list[list[_Token]]:
    groups: list[list[_Token]] = []
    for token in tokens:
        if groups and _joins(groups[-1], token, text):
            groups[-1].append(token)
        else:
            groups.append([token])
    return groups


def _stands_alone(token: _Token, text: str) -> bool:
    """True between spaces, punctuation or the ends of the text: " 12/5 ", "12/5?"."""
    before = text[token.start - 1] if token.start else " "
    after = text[token.end] if token.end < len(text) else " "
    return all(c.isspace() or unicodedata.category(c)[0] == "P" for c in (before, after))


def _keep(group: list[_Token], text: str) -> list[_Token]:
    """Drops weak tokens that have no company: 1/2 on its own, 便宜一点."""
    kept = []
    for token in group:
        if token.weak == "slash" and len(group) == 1 and not _stands_alone(token, text):
            continue
        if token.weak == "yidian" and not any(t.day for t in group):
            continue
        kept.append(token)
    return kept


# ------------------------------------------------------------------------------------------
# values


def _hour_24(hour: int, part: str | None, fixed: bool) -> int:
    if fixed:
        return hour
    if part == "evening" and 1 <= hour <= 4:
        return hour  # 夜里2点, 半夜三点: the small hours, not the afternoon
    if part in ("afternoon", "evening"):
        if hour == 12:
            return 0 if part == "evening" else 12
        return hour + 12 if 1 <= hour <= 11 else hour
    if part == "noon":
        return hour + 12 if 1 <= hour <= 10 else hour
    if part == "early":
        return 0 if hour == 12 else hour
    if part == "morning":
        return hour
    # no part of day said: 1..6 are afternoon hours for a dealership
    return hour + 12 if 1 <= hour <= 6 else hour


def _value(group: list[_Token]) -> dict[str, Any]:
    day = next((t for t in group if t.day is not None), None)
    clock = next((t for t in group if t.hour is not None), None)
    part = next((t.part for t in group if t.part), None)
    value: dict[str, Any] = {
        "date": day.day.isoformat() if day else None,
        "time": None,
        "part_of_day": "morning" if part == "early" else part,
        "end_date": day.end_day.isoformat() if day and day.end_day else None,
        "grain": "week" if day and day.end_day else "day",
    }
    if clock is not None:
        hour = _hour_24(clock.hour or 0, part, clock.fixed)
        value["time"] = f"{hour:02d}:{clock.minute:02d}"
        value["grain"] = "minute" if clock.minute_said else "hour"
    return value


def extract_times(text: str, now: datetime) -> list[Entity]:
    """Returns every date / time mention as an entity named "time", resolved against `now`.

    `now` is timezone-aware in the dealer's timezone (e.g. Asia/Shanghai). Never raises.
    """
    if not text or not isinstance(text, str):
        return []
    try:
        scanned = text[:MAX_SCAN_CHARS]
        folded = fold(scanned)
        today = now.date()
        entities = []
        for group in _group(_scan(folded, today), folded):
            group = _keep(group, folded)
            if not group:
                continue
            start, end = group[0].start, group[-1].end
            entities.append(Entity("time", _value(group), start, end, text[start:end]))
        return entities
    except Exception:  # a date we cannot read must not cost the rest of the message
        log.exception("date extraction failed", extra={"chars": len(text)})
        return []


def to_datetime(value: dict[str, Any], tz: tzinfo | str) -> datetime | None:
    """Returns the aware datetime of an extracted value when both date and time are known."""
    if not value or not value.get("date") or not value.get("time"):
        return None
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    naive = datetime.combine(date.fromisoformat(value["date"]), time.fromisoformat(value["time"]))
    localize = getattr(zone, "localize", None)  # pytz zones must not be passed as tzinfo=
    return localize(naive) if callable(localize) else naive.replace(tzinfo=zone)
