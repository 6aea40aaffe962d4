"""The workshop calendar: when a service can start, and the nearest free starts to a wish."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.dealer_config import DayHours, DealerConfig
from flows import calendar
from flows.calendar import Calendar
from flows.turn import Booked

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Mon-Fri 9-18, Saturday mornings, closed on Sunday; Thursday 26 Nov is a holiday
CONFIG = DealerConfig(
    hours={**{d: DayHours(open=time(9), close=time(18)) for d in range(5)}, 5: DayHours(open=time(9), close=time(12))},
    holidays=[date(2026, 11, 26)],
    bays=2,
    slot_minutes=30,
)
# Monday 23 Nov 2026, 10:00 in Shanghai
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TUESDAY = date(2026, 11, 24)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


def taken(start: datetime, minutes: int = 60, appointment_id: int | None = None) -> Booked:
    return Booked(start, start + timedelta(minutes=minutes), appointment_id)


def cal(*booked: Booked, config: DealerConfig = CONFIG) -> Calendar:
    return Calendar(config, "Asia/Shanghai", booked, NOW)


def clock(starts: list[datetime]) -> list[str]:
    return [s.astimezone(SHANGHAI).strftime("%d %H:%M") for s in starts]


def test_a_future_start_inside_opening_hours_is_bookable() -> None:
    assert calendar.why_not(cal(), local(TUESDAY, 15), 60) is None
    assert calendar.is_bookable(cal(), local(TUESDAY, 15), 60)


def test_a_start_before_now_is_past() -> None:
    assert calendar.why_not(cal(), local(date(2026, 11, 23), 9, 30), 60) == calendar.PAST


def test_sunday_is_a_closed_day_and_the_holiday_a_holiday() -> None:
    assert calendar.why_not(cal(), local(date(2026, 11, 29), 10), 60) == calendar.CLOSED_DAY
    assert calendar.why_not(cal(), local(date(2026, 11, 26), 10), 60) == calendar.HOLIDAY


def test_the_whole_service_must_fit_inside_the_opening_hours() -> None:
    assert calendar.why_not(cal(), local(TUESDAY, 8, 30), 60) == calendar.OUTSIDE_HOURS
    assert calendar.why_not(cal(), local(TUESDAY, 17, 30), 60) == calendar.OUTSIDE_HOURS
    assert calendar.why_not(cal(), local(TUESDAY, 17), 60) is None
    assert calendar.why_not(cal(), local(date(2026, 11, 28), 11), 120) == calendar.OUTSIDE_HOURS  # Saturday


def test_a_start_is_full_when_every_bay_is_taken() -> None:
    one = taken(local(TUESDAY, 15))
    assert calendar.why_not(cal(one), local(TUESDAY, 15), 60) is None
    assert calendar.why_not(cal(one, one), local(TUESDAY, 15), 60) == calendar.FULL
    assert calendar.why_not(cal(one, one), local(TUESDAY, 16), 60) is None  # back to back is fine


def test_a_long_service_must_have_a_bay_at_every_moment_not_just_at_its_start() -> None:
    busy_later = taken(local(TUESDAY, 11))
    assert calendar.why_not(cal(busy_later, busy_later), local(TUESDAY, 10), 120) == calendar.FULL
    assert calendar.why_not(cal(busy_later, busy_later), local(TUESDAY, 10), 60) is None


def test_bookings_that_do_not_overlap_each_other_share_the_bays() -> None:
    # 10-11 and 11-12 in one bay each moment: a 10:00-12:00 job still finds the second bay
    booked = (taken(local(TUESDAY, 10)), taken(local(TUESDAY, 11)))
    assert calendar.why_not(cal(*booked), local(TUESDAY, 10), 120) is None


def test_free_slots_of_a_day_start_at_opening_on_the_slot_grid() -> None:
    assert clock(calendar.free_slots(cal(), 60, TUESDAY)) == ["24 09:00", "24 09:30", "24 10:00"]


def test_free_slots_today_only_offer_starts_still_ahead() -> None:
    assert clock(calendar.free_slots(cal(), 60, date(2026, 11, 23))) == ["23 10:30", "23 11:00", "23 11:30"]


def test_free_slots_nearest_to_a_full_wished_time() -> None:
    full = taken(local(TUESDAY, 15), 30)
    slots = calendar.free_slots(cal(full, full), 60, TUESDAY, at=time(15))
    assert clock(slots) == ["24 14:00", "24 15:30", "24 16:00"]  # 14:30 would run into 15:00


def test_free_slots_inside_the_wished_part_of_day() -> None:
    assert clock(calendar.free_slots(cal(), 60, TUESDAY, part="afternoon")) == ["24 12:00", "24 12:30", "24 13:00"]


def test_free_slots_move_forward_past_closed_days_and_holidays() -> None:
    assert clock(calendar.free_slots(cal(), 60, date(2026, 11, 29))) == ["30 09:00", "30 09:30", "30 10:00"]
    assert clock(calendar.free_slots(cal(), 60, date(2026, 11, 26))) == ["27 09:00", "27 09:30", "27 10:00"]


def test_free_slots_leave_out_the_excluded_starts() -> None:
    slots = calendar.free_slots(cal(), 60, TUESDAY, at=time(15), exclude=[local(TUESDAY, 15)])
    assert clock(slots) == ["24 14:00", "24 14:30", "24 15:30"]


def test_nothing_free_for_two_weeks_gives_no_slots() -> None:
    tiny = DealerConfig(hours={0: DayHours(open=time(9), close=time(10))}, bays=1)
    booked = [taken(local(date(2026, 11, 23) + timedelta(days=7 * w), 9)) for w in range(4)]
    assert calendar.free_slots(cal(*booked, config=tiny), 60, date(2026, 11, 23)) == []


def test_day_reason_says_why_nothing_can_start_that_day() -> None:
    assert calendar.day_reason(cal(), date(2026, 11, 20), 60) == calendar.PAST
    assert calendar.day_reason(cal(), date(2026, 11, 29), 60) == calendar.CLOSED_DAY
    assert calendar.day_reason(cal(), TUESDAY, 120, "evening") == calendar.OUTSIDE_HOURS  # 17:00 + 2h
    assert calendar.day_reason(cal(), TUESDAY, 60, "afternoon") is None
    whole_day = [taken(local(TUESDAY, 9), 9 * 60)] * 2
    assert calendar.day_reason(cal(*whole_day), TUESDAY, 60) == calendar.FULL


def test_a_calendar_without_an_appointment_ignores_its_own_booking() -> None:
    own, other = taken(local(TUESDAY, 10), appointment_id=7), taken(local(TUESDAY, 10), appointment_id=8)
    assert calendar.why_not(cal(own, other), local(TUESDAY, 10, 30), 60) == calendar.FULL
    assert calendar.why_not(cal(own, other).without(7), local(TUESDAY, 10, 30), 60) is None
