"""Holiday dates: the lunar festivals move every year, the public holidays do not."""
from __future__ import annotations

from datetime import date

import pytest
from lunar_python import Lunar

from scheduler import holidays


@pytest.mark.parametrize(
    "name, year, expected",
    [
        ("spring_festival", 2027, date(2027, 2, 6)),
        ("mid_autumn", 2026, date(2026, 9, 25)),
        ("dragon_boat", 2027, date(2027, 6, 9)),
        ("spring_festival", 2026, date(2026, 2, 17)),
        ("lantern", 2026, date(2026, 3, 3)),
        ("new_year", 2027, date(2027, 1, 1)),
        ("labour_day", 2027, date(2027, 5, 1)),
        ("national_day", 2026, date(2026, 10, 1)),
    ],
)
def test_holiday_dates(name: str, year: int, expected: date) -> None:
    assert holidays.holiday_date(name, year) == expected


def test_lunar_dates_agree_with_the_library() -> None:
    solar = Lunar.fromYmd(2027, 1, 1).getSolar()
    assert holidays.holiday_date("spring_festival", 2027) == date(solar.getYear(), solar.getMonth(), solar.getDay())


def test_a_dealer_adds_its_own_holiday_as_month_and_day() -> None:
    custom = {"store_anniversary": "06-18", "broken": "13-40"}
    assert holidays.holiday_date("store_anniversary", 2027, custom) == date(2027, 6, 18)
    assert holidays.holiday_date("broken", 2027, custom) is None
    assert holidays.holiday_date("unknown", 2027) is None


def test_holidays_between_lists_only_the_named_ones_in_the_window_in_date_order() -> None:
    found = holidays.holidays_between(
        date(2026, 9, 24), date(2026, 10, 2), ["national_day", "mid_autumn", "spring_festival", "mid_autumn"]
    )
    assert found == [("mid_autumn", date(2026, 9, 25)), ("national_day", date(2026, 10, 1))]


def test_a_window_over_new_year_finds_holidays_of_both_years() -> None:
    found = holidays.holidays_between(date(2026, 12, 31), date(2027, 1, 1), ["new_year"])
    assert found == [("new_year", date(2027, 1, 1))]
