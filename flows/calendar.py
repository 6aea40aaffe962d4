"""The workshop calendar as pure functions: can a service start then, and which starts are free.

Everything works on aware datetimes; opening hours, holidays and the slot grid are read in the
dealer's own timezone, so "15:00" means 15:00 in Shanghai whatever the server's clock says.
Capacity is counted in bays: a start is free when fewer than `bays` bookings overlap at every
moment of the service (not just at its start: a long job can run into a busy afternoon).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.dealer_config import DayHours, DealerConfig
from flows.turn import Booked

# why a start is not bookable
PAST = "past"
CLOSED_DAY = "closed_day"
HOLIDAY = "holiday"
OUTSIDE_HOURS = "outside_hours"
FULL = "full"

SEARCH_DAYS = 14

# where a start may fall for each part of day the NLU reports (start inclusive, end exclusive);
# noon overlaps morning and afternoon on purpose: "中午" is a loose wish
PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(0, 0), time(12, 0)),
    "noon": (time(11, 0), time(14, 0)),
    "afternoon": (time(12, 0), time(18, 0)),
    "evening": (time(17, 0), time(23, 59, 59)),
}


@dataclass(frozen=True, slots=True)
class Calendar:
    """What the calendar questions need: the dealer's rules, the taken slots and the clock."""

    config: DealerConfig
    timezone: str
    booked: tuple[Booked, ...]
    now: datetime  # aware

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def without(self, appointment_id: int | None) -> Calendar:
        """The calendar with one appointment's own booking left out (it is the one being moved)."""
        if appointment_id is None:
            return self
        return replace(self, booked=tuple(b for b in self.booked if b.appointment_id != appointment_id))


def opening(cal: Calendar, day: date) -> DayHours | None:
    """The day's opening hours, or None when the workshop is closed (weekday off or holiday)."""
    if day in cal.config.holidays:
        return None
    return cal.config.hours.get(day.weekday())


def why_not(cal: Calendar, start: datetime, minutes: int) -> str | None:
    """Returns why a service of `minutes` cannot start at `start`, or None when it can."""
    if start <= cal.now:
        return PAST
    local = start.astimezone(cal.zone)
    day = local.date()
    if day in cal.config.holidays:
        return HOLIDAY
    hours = cal.config.hours.get(day.weekday())
    if hours is None:
        return CLOSED_DAY
    if not _inside_hours(cal, start, minutes, hours):
        return OUTSIDE_HOURS
    if not _has_room(cal, start, minutes):
        return FULL
    return None


def is_bookable(cal: Calendar, start: datetime, minutes: int) -> bool:
    return why_not(cal, start, minutes) is None


def day_reason(cal: Calendar, day: date, minutes: int, part: str | None = None) -> str | None:
    """Returns why nothing can start on that day (in that part of it), or None when something can."""
    if day < cal.today():
        return PAST
    if day in cal.config.holidays:
        return HOLIDAY
    if cal.config.hours.get(day.weekday()) is None:
        return CLOSED_DAY
    starts = [s for s in grid(cal, day, minutes) if _in_part(cal, s, part)]
    if not starts:
        return OUTSIDE_HOURS
    future = [s for s in starts if s > cal.now]
    if not future:
        return PAST
    if not any(_has_room(cal, s, minutes) for s in future):
        return FULL
    return None


def grid(cal: Calendar, day: date, minutes: int) -> list[datetime]:
    """Every start on the slot grid of that day from which the whole service fits in the hours.

    The grid counts from opening time, so a workshop opening at 8:30 offers 8:30, 9:00 ...
    """
    hours = opening(cal, day)
    if hours is None:
        return []
    zone = cal.zone
    start = datetime.combine(day, hours.open, zone)
    close = datetime.combine(day, hours.close, zone)
    step = timedelta(minutes=cal.config.slot_minutes)
    starts = []
    while start + timedelta(minutes=minutes) <= close:
        starts.append(start)
        start += step
    return starts


def free_slots(
    cal: Calendar,
    minutes: int,
    day: date,
    part: str | None = None,
    at: time | None = None,
    limit: int = 3,
    exclude: Iterable[datetime] = (),
) -> list[datetime]:
    """Returns up to `limit` free starts nearest to the wish, in time order.

    The wish is a day with, optionally, a part of day or a clock time. On each day (the wished
    one first, then the following ones up to two weeks) the free starts closest to the wished
    time of day win, so "Friday 15:00, full" offers 14:30 and 15:30 before Friday morning.
    """
    skip = {e.astimezone(cal.zone) for e in exclude}
    first = max(day, cal.today())
    found: list[datetime] = []
    for offset in range(SEARCH_DAYS + 1):
        current = first + timedelta(days=offset)
        free = [s for s in grid(cal, current, minutes) if s not in skip and is_bookable(cal, s, minutes)]
        free.sort(key=lambda s: (_distance(s, part, at), s))
        found.extend(free[: limit - len(found)])
        if len(found) >= limit:
            break
    return sorted(found)


def _inside_hours(cal: Calendar, start: datetime, minutes: int, hours: DayHours) -> bool:
    local = start.astimezone(cal.zone)
    open_at = datetime.combine(local.date(), hours.open, cal.zone)
    close_at = datetime.combine(local.date(), hours.close, cal.zone)
    return open_at <= local and local + timedelta(minutes=minutes) <= close_at


def _has_room(cal: Calendar, start: datetime, minutes: int) -> bool:
    """True when fewer than `bays` bookings overlap at every moment of [start, start + minutes)."""
    end = start + timedelta(minutes=minutes)
    overlapping = [b for b in cal.booked if b.starts_at < end and b.ends_at > start]
    # the busiest moment is the service's start or the start of one of the overlapping bookings
    moments = [start] + [b.starts_at for b in overlapping if b.starts_at > start]
    return all(sum(1 for b in overlapping if b.starts_at <= m < b.ends_at) < cal.config.bays for m in moments)


def _in_part(cal: Calendar, start: datetime, part: str | None) -> bool:
    if part not in PARTS_OF_DAY:
        return True
    low, high = PARTS_OF_DAY[part]
    return low <= start.astimezone(cal.zone).time() < high


def _distance(start: datetime, part: str | None, at: time | None) -> int:
    """Minutes between a start and the wished time of day (0 inside a wished part of day)."""
    clock = start.hour * 60 + start.minute
    if at is not None:
        return abs(clock - (at.hour * 60 + at.minute))
    if part in PARTS_OF_DAY:
        low, high = PARTS_OF_DAY[part]
        low_m, high_m = low.hour * 60 + low.minute, high.hour * 60 + high.minute
        return 0 if low_m <= clock < high_m else min(abs(clock - low_m), abs(clock - high_m))
    return 0
