"""The holidays a dealer may greet its owners on, and their dates in a given year.

The traditional festivals follow the lunar calendar, so their solar dates move every year:
`lunar_python` (1900-2100) converts them. The public holidays are fixed solar dates. A dealer
adds its own (a store anniversary) as ``extra["holidays"] = {"name": "MM-DD"}`` and greets it by
naming it in `holidays_greeted` like any other.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache

from lunar_python import Lunar

# name -> (lunar month, lunar day)
LUNAR = {
    "spring_festival": (1, 1),  # 春节
    "lantern": (1, 15),  # 元宵节
    "dragon_boat": (5, 5),  # 端午节
    "mid_autumn": (8, 15),  # 中秋节
}
# name -> (month, day)
SOLAR = {
    "new_year": (1, 1),  # 元旦
    "labour_day": (5, 1),  # 劳动节
    "national_day": (10, 1),  # 国庆节
}
KNOWN = (*LUNAR, *SOLAR)


@cache
def _lunar_date(name: str, year: int) -> date:
    # The lunar year that starts in solar year `year` holds all four festivals inside that solar
    # year (Spring Festival falls between 21 January and 20 February).
    month, day = LUNAR[name]
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


def holiday_date(name: str, year: int, custom: Mapping[str, str] | None = None) -> date | None:
    """Returns the solar date of a holiday in that year, or None for a name we do not know."""
    if name in LUNAR:
        return _lunar_date(name, year)
    if name in SOLAR:
        return date(year, *SOLAR[name])
    month_day = (custom or {}).get(name)
    if not month_day:
        return None
    try:
        month, day = (int(part) for part in str(month_day).split("-"))
        return date(year, month, day)
    except ValueError:
        return None  # a malformed or impossible date (02-30, or 02-29 outside a leap year)


def holidays_between(
    first: date, last: date, names: Iterable[str], custom: Mapping[str, str] | None = None
) -> list[tuple[str, date]]:
    """Returns the named holidays that fall between two days (both included), in date order."""
    found = []
    for name in dict.fromkeys(names):  # keeps order, drops repeats
        for year in range(first.year, last.year + 1):
            day = holiday_date(name, year, custom)
            if day is not None and first <= day <= last:
                found.append((name, day))
    return sorted(found, key=lambda pair: (pair[1], pair[0]))
