"""The reminder rules: what each one is for, its defaults, and when one subject falls due.

Every rule is a pure function of the facts of one subject (a vehicle, an appointment, an owner,
a repair order) and `Today` (the dealer's local day, clock and settings). It returns the
reminders that should go in this run, each with its send time and dedupe key, so it can be
tested without a database. scheduler/planner.py finds the candidates with SQL that already
filters by date, and asks these functions for the final word.

A run covers send days from a few days back (a scheduler that was down catches up) to tomorrow
(a planner that runs once a day still has tomorrow morning's reminders queued on time); the key
makes a reminder planned on several runs one row.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from bot.dealer_config import DealerConfig
from scheduler import holidays

CATCH_UP_DAYS = 3
AHEAD_DAYS = 1
EPOCH = date(1970, 1, 1)
ACTIVE_APPOINTMENT = frozenset({"booked", "confirmed"})
SOON = timedelta(hours=2)


@dataclass(frozen=True)
class Rule:
    """One reminder rule with its defaults; a dealer may switch it off or override them."""

    code: str
    purpose: str
    needs: str  # the facts it reads
    # days before the due day each reminder goes (negative: after it); several: several rows
    offsets_days: tuple[int, ...] = (0,)
    send_hour: int = 10  # local
    capped: bool = True  # counts against the weekly care cap (care_cap_per_week)
    # the booking service a reply to it opens: the first of these codes the dealer offers
    services: tuple[str, ...] = ()
    catch_up_days: int = CATCH_UP_DAYS  # how late a missed reminder may still go
    # whether a dealer may move it (lead_days, offsets_days): "tomorrow" and "the day after" may not
    adjustable: bool = True

    @property
    def kind(self) -> str:
        return "survey" if self.code == "survey" else f"reminder:{self.code}"


RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule("maintenance", "routine service every so many days or km, whichever comes first",
             "vehicle: last_service_date, last_service_mileage, delivery_date", offsets_days=(7,),
             services=("minor_service", "major_service")),
        Rule("first_service", "首保: the first service after delivery", "vehicle: delivery_date, mileage, no service yet",
             offsets_days=(7,), services=("first_service", "minor_service")),
        Rule("inspection", "年检: the annual inspection", "vehicle: inspection_due", offsets_days=(30,), services=("inspection",)),
        Rule("insurance", "续保: insurance renewal", "vehicle: insurance_due", offsets_days=(30, 7, 1)),
        Rule("warranty", "a check before the warranty ends", "vehicle: warranty_until", offsets_days=(30,), services=("repair",)),
        Rule("appointment_tomorrow", "the day before a booked appointment", "appointment: starts_at, status",
             offsets_days=(1,), capped=False, adjustable=False),
        Rule("appointment_soon", "two hours before a booked appointment", "appointment: starts_at, status",
             offsets_days=(), capped=False),
        Rule("no_show", "follow-up the day after a missed appointment", "appointment: starts_at, status no_show",
             offsets_days=(-1,), adjustable=False),
        Rule("delivery_callback", "the 24-hour call-back after a new car's delivery", "vehicle: delivery_date",
             offsets_days=(-1,), adjustable=False),
        Rule("survey", "满意度: the survey after a repair order closes", "service_record: closed_at", offsets_days=()),
        Rule("birthday", "birthday wishes on the day", "customer: birthday", catch_up_days=0),
        Rule("holiday", "holiday wishes on the day (holidays_greeted)", "customer", catch_up_days=0),
        Rule("tier_care", "keeping in touch at the owner's tier cadence (A/B/C)", "customer: tier", offsets_days=()),
    )
}
# the rules that answer with a booking: their texts end with the call to action
BOOKING_RULES = frozenset({"maintenance", "first_service", "inspection", "warranty", "no_show", "tier_care"})


@dataclass(frozen=True)  # not slots: cached_property needs the instance __dict__
class RuleSettings:
    """A rule as one dealer runs it: the catalogue's defaults with the dealer's overrides."""

    code: str
    enabled: bool
    offsets_days: tuple[int, ...]  # largest first: the earliest reminder first
    send_hour: int
    template_zh: str = ""
    template_en: str = ""

    @cached_property
    def latest_first(self) -> tuple[tuple[int, timedelta], ...]:
        """The offsets, smallest (the latest send day) first, each with its timedelta."""
        return tuple((offset, timedelta(days=offset)) for offset in reversed(self.offsets_days))

    @cached_property
    def keyed_by_offset(self) -> bool:
        # a rule that reminds several times names the offset in each key
        return len(self.offsets_days) > 1 or len(RULES[self.code].offsets_days) > 1

    def template(self, lang: str) -> str:
        return self.template_en if lang == "en" else self.template_zh


def rule_settings(config: DealerConfig, code: str) -> RuleSettings:
    """Returns the rule with the dealer's overrides (DealerConfig.reminders[code]) applied."""
    rule = RULES[code]
    own = config.reminders.get(code)
    if own is None:
        return RuleSettings(code, True, _descending(rule.offsets_days), rule.send_hour)
    offsets = rule.offsets_days
    if not rule.adjustable or not offsets:
        pass  # timed by what it says ("tomorrow") or by the hour, not by days before
    elif own.offsets_days:
        offsets = tuple(own.offsets_days)
    elif own.lead_days is not None:
        offsets = (own.lead_days,)
    return RuleSettings(code, own.enabled, _descending(offsets), own.send_hour, own.template_zh, own.template_en)


def _descending(offsets: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(set(offsets), reverse=True))


# -- time ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Horizon:
    """The send days one run covers, both ends included."""

    first: date
    last: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass(frozen=True)
class DealerTime:
    """The dealer's clock: local days and hours, and the quiet hours nothing is sent in."""

    zone: ZoneInfo
    quiet_hours: tuple[time, time] = (time(21, 0), time(8, 0))
    # send times by (day, hour): a run asks for the same few half a million times
    _sends: dict[tuple[date, int], datetime] = field(default_factory=dict, compare=False, repr=False)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def is_quiet(self, moment: datetime) -> bool:
        start, end = self.quiet_hours
        clock = self.local(moment).time()
        if start == end:
            return False
        if start < end:
            return start <= clock < end
        return clock >= start or clock < end  # over midnight, the usual case (21:00-08:00)

    def next_allowed(self, moment: datetime) -> datetime:
        """Returns the moment itself, or the end of the quiet hours it falls in (UTC)."""
        if not self.is_quiet(moment):
            return moment.astimezone(UTC)
        start, end = self.quiet_hours
        local = self.local(moment)
        day = local.date()
        if start > end and local.time() >= start:
            day += timedelta(days=1)  # evening: the quiet hours end tomorrow morning
        return datetime.combine(day, end, self.zone).astimezone(UTC)

    def start_of(self, day: date) -> datetime:
        """Returns local midnight at the start of the day, in UTC."""
        return datetime.combine(day, time(0), self.zone).astimezone(UTC)

    def at(self, day: date, hour: int) -> datetime:
        """Returns the local hour on that day in UTC, moved out of the quiet hours."""
        send = self._sends.get((day, hour))
        if send is None:
            send = self._sends[(day, hour)] = self.next_allowed(datetime.combine(day, time(hour), self.zone))
        return send


def epoch_day(day: date) -> int:
    return (day - EPOCH).days


@dataclass
class Today:
    """What every rule reads besides its subject: the run's clock and the dealer's settings."""

    now: datetime  # aware
    time: DealerTime
    config: DealerConfig = field(default_factory=DealerConfig)
    _horizons: dict[str, Horizon] = field(default_factory=dict, repr=False)
    _rules: dict[str, RuleSettings] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, now: datetime, timezone_name: str, config: DealerConfig) -> Today:
        start, end = config.quiet_hours
        return cls(now=now, time=DealerTime(ZoneInfo(timezone_name), (start, end)), config=config)

    @cached_property
    def day(self) -> date:
        """The dealer's local date."""
        return self.time.local(self.now).date()

    def horizon(self, code: str) -> Horizon:
        """The send days this run covers for the rule: its catch-up days back to tomorrow."""
        if code not in self._horizons:
            back, ahead = timedelta(days=RULES[code].catch_up_days), timedelta(days=AHEAD_DAYS)
            self._horizons[code] = Horizon(self.day - back, self.day + ahead)
        return self._horizons[code]

    def rule(self, code: str) -> RuleSettings:
        """The rule as this dealer runs it."""
        if code not in self._rules:
            self._rules[code] = rule_settings(self.config, code)
        return self._rules[code]

    @cached_property
    def holidays(self) -> list[tuple[str, date]]:
        """The greeted holidays whose day is in this run's horizon."""
        horizon = self.horizon("holiday")
        custom = self.config.extra.get("holidays") or {}
        return holidays.holidays_between(horizon.first, horizon.last, self.config.holidays_greeted, custom)


class Due(NamedTuple):
    """One reminder to plan: for which subject, why (the due day), when to send, its key."""

    rule: str
    subject_id: int
    due: date  # the day it is about: the service, the expiry, the appointment, the birthday
    not_before: datetime  # UTC
    dedupe_key: str
    offset: int | None = None  # days before the due day, for the rules timed by day
    holiday: str | None = None


# -- subjects --------------------------------------------------------------------------------------
# Named tuples: the planner builds one per candidate, half a million on a holiday.


class VehicleFacts(NamedTuple):
    id: int
    delivery_date: date | None = None
    last_service_date: date | None = None
    last_service_mileage: int | None = None
    mileage: int | None = None
    insurance_due: date | None = None
    inspection_due: date | None = None
    warranty_until: date | None = None


class AppointmentFacts(NamedTuple):
    id: int
    starts_at: datetime
    status: str = "booked"
    created_at: datetime | None = None


class CustomerFacts(NamedTuple):
    id: int
    birthday: date | None = None
    tier: str = "C"


class ServiceRecordFacts(NamedTuple):
    id: int
    closed_at: datetime | None


# -- the rules -------------------------------------------------------------------------------------


def _by_day(code: str, subject_id: int, due: date | None, today: Today, key: str, holiday: str | None = None) -> list[Due]:
    """A reminder due on a day: at the send hour, offset days before it, if that is in the horizon.

    When several offsets fall in one horizon (a planner catching up), only the latest goes: the
    owner needs the freshest reminder, not three at once.
    """
    settings = today.rule(code)
    if due is None or not settings.enabled:
        return []
    horizon = today.horizon(code)
    for offset, before in settings.latest_first:
        send_on = due - before
        if horizon.first <= send_on <= horizon.last:
            if settings.keyed_by_offset:
                key = f"{key}:{offset}"
            return [Due(code, subject_id, due, today.time.at(send_on, settings.send_hour), key, offset, holiday)]
    return []


def maintenance_due(vehicle: VehicleFacts, *, interval_days: int, interval_km: int) -> date | None:
    """Returns the day the next service falls due: by time or by distance, whichever comes first.

    The distance is estimated from the owner's average daily distance up to the last service
    (the odometer as the workshop read it, on a known day). A rate measured up to today would
    move the due day a little every day, and with it the dedupe key: a second reminder.
    """
    last = vehicle.last_service_date
    if last is None:
        return None
    due = last + timedelta(days=interval_days)
    km_due = distance_due(vehicle.delivery_date, last, vehicle.last_service_mileage, interval_km, since=last)
    return min(due, km_due) if km_due else due


def first_service_due(vehicle: VehicleFacts, *, today: date, days: int, km: int) -> date | None:
    """Returns the day the first service (首保) falls due, for a car that has had no service yet.

    Without a service there is no dated odometer reading: the average daily distance is the
    latest reading over the days since delivery. The due day may drift as days pass, so this
    rule's key names the car, not the day: one first-service reminder per car.
    """
    if vehicle.last_service_date is not None or vehicle.delivery_date is None:
        return None
    due = vehicle.delivery_date + timedelta(days=days)
    km_due = distance_due(vehicle.delivery_date, today, vehicle.mileage, km, since=vehicle.delivery_date)
    return min(due, km_due) if km_due else due


def distance_due(delivered: date | None, read_on: date, reading_km: int | None, km: int, *, since: date) -> date | None:
    """Returns when `km` more kilometres from `since` are driven at the car's average daily distance."""
    if delivered is None or not reading_km or reading_km <= 0 or read_on <= delivered:
        return None
    # whole days, rounded down: the same integer arithmetic as the planner's SQL pre-filter
    return since + timedelta(days=km * (read_on - delivered).days // reading_km)


def maintenance(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """Lead days before the next service falls due."""
    cfg = today.config
    due = maintenance_due(vehicle, interval_days=cfg.maintenance_interval_days, interval_km=cfg.maintenance_interval_km)
    return _by_day("maintenance", vehicle.id, due, today, f"maintenance:{vehicle.id}:{due}")


def first_service(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """Lead days before the first service (首保) of a car never serviced."""
    cfg = today.config
    due = first_service_due(vehicle, today=today.day, days=cfg.first_service_days, km=cfg.first_service_km)
    return _by_day("first_service", vehicle.id, due, today, f"first_service:{vehicle.id}:{vehicle.delivery_date}")


def inspection(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """Lead days before the annual inspection (年检) is due."""
    due = vehicle.inspection_due
    return _by_day("inspection", vehicle.id, due, today, f"inspection:{vehicle.id}:{due}")


def insurance(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """Each offset before the insurance expires (续保): three reminders, three keys."""
    due = vehicle.insurance_due
    return _by_day("insurance", vehicle.id, due, today, f"insurance:{vehicle.id}:{due}")


def warranty(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """Lead days before the warranty ends."""
    due = vehicle.warranty_until
    return _by_day("warranty", vehicle.id, due, today, f"warranty:{vehicle.id}:{due}")


def delivery_callback(vehicle: VehicleFacts, today: Today) -> list[Due]:
    """The day after a new car's delivery: the 24-hour call-back."""
    due = vehicle.delivery_date
    return _by_day("delivery_callback", vehicle.id, due, today, f"delivery_callback:{vehicle.id}:{due}")


def _booked_after(appointment: AppointmentFacts, moment: datetime) -> bool:
    # an owner who booked after the reminder would have gone knows already
    return appointment.created_at is not None and appointment.created_at > moment


def appointment_tomorrow(appointment: AppointmentFacts, today: Today) -> list[Due]:
    """The day before a booked or confirmed appointment, at the send hour."""
    day = today.time.local(appointment.starts_at).date()
    # on the day itself "tomorrow" is stale: appointment_soon speaks then
    if appointment.status not in ACTIVE_APPOINTMENT or appointment.starts_at <= today.now or day <= today.day:
        return []
    # the key holds the start time: an appointment moved within its day is reminded of afresh
    key = f"appointment_tomorrow:{appointment.id}:{day}:{today.time.local(appointment.starts_at):%H%M}"
    due = _by_day("appointment_tomorrow", appointment.id, day, today, key)
    return [d for d in due if d.not_before < appointment.starts_at and not _booked_after(appointment, d.not_before)]


def appointment_soon(appointment: AppointmentFacts, today: Today) -> list[Due]:
    """Two hours before the start, unless that falls in the quiet hours (an 08:30 appointment)."""
    settings = today.rule("appointment_soon")
    if not settings.enabled or appointment.status not in ACTIVE_APPOINTMENT or appointment.starts_at <= today.now:
        return []
    remind_at = appointment.starts_at - SOON
    if today.time.is_quiet(remind_at) or _booked_after(appointment, remind_at):
        return []
    day = today.time.local(appointment.starts_at).date()
    if today.time.local(remind_at).date() not in today.horizon("appointment_soon"):
        return []
    key = f"appointment_soon:{appointment.id}:{day}:{today.time.local(appointment.starts_at):%H%M}"
    return [Due("appointment_soon", appointment.id, day, remind_at.astimezone(UTC), key)]


def no_show(appointment: AppointmentFacts, today: Today) -> list[Due]:
    """The day after a missed appointment: would the owner like another time?"""
    if appointment.status != "no_show":
        return []
    day = today.time.local(appointment.starts_at).date()
    return _by_day("no_show", appointment.id, day, today, f"no_show:{appointment.id}:{day}")


def birthday_on(birthday: date, year: int) -> date:
    """Returns the birthday in that year; 29 February falls on the 28th outside leap years."""
    try:
        return birthday.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def birthday(customer: CustomerFacts, today: Today) -> list[Due]:
    """On the owner's birthday, never late."""
    if customer.birthday is None:
        return []
    horizon = today.horizon("birthday")
    for year in sorted({horizon.first.year, horizon.last.year}, reverse=True):
        found = _by_day("birthday", customer.id, birthday_on(customer.birthday, year), today, f"birthday:{customer.id}:{year}")
        if found:
            return found
    return []


def holiday(customer: CustomerFacts, today: Today) -> list[Due]:
    """On each holiday the dealer greets, never late."""
    found: list[Due] = []
    for name, day in today.holidays:
        key = f"holiday:{customer.id}:{name}:{day.year}"
        found += _by_day("holiday", customer.id, day, today, key, name)
    return found


def tier_care(customer: CustomerFacts, today: Today) -> list[Due]:
    """Once every cadence days of the owner's tier, on a day spread by the owner's id.

    The period index (epoch day + id) // cadence is deterministic, so each period yields one
    row per owner however often the planner runs, and owners do not all fall due together.
    """
    settings = today.rule("tier_care")
    cadence = today.config.tier_cadence_days.get(customer.tier or "C")
    if not settings.enabled or not cadence or cadence <= 0:
        return []
    for day in reversed(today.horizon("tier_care").days()):
        if (epoch_day(day) + customer.id) % cadence == 0:
            period = (epoch_day(day) + customer.id) // cadence
            at = today.time.at(day, settings.send_hour)
            return [Due("tier_care", customer.id, day, at, f"tier_care:{customer.id}:{period}")]
    return []


def tier_care_residues(cadence: int, horizon: Horizon) -> list[int]:
    """The values of (id + epoch day of the horizon's first day) % cadence of the owners due in it.

    An owner is due on day first + n when (id + epoch_day(first) + n) % cadence == 0, that is when
    (id + epoch_day(first)) % cadence == -n mod cadence: the planner's SQL filters on that.
    """
    return sorted({(-n) % cadence for n in range(len(horizon.days()))})


def survey(record: ServiceRecordFacts, today: Today) -> list[Due]:
    """survey_delay_hours after the repair order closed, out of the quiet hours, if recent enough."""
    settings = today.rule("survey")
    if not settings.enabled or record.closed_at is None:
        return []
    send_at = today.time.next_allowed(record.closed_at + timedelta(hours=today.config.survey_delay_hours))
    horizon = today.horizon("survey")
    if send_at < today.now - timedelta(days=RULES["survey"].catch_up_days) or today.time.local(send_at).date() > horizon.last:
        return []
    closed_day = today.time.local(record.closed_at).date()
    return [Due("survey", record.id, closed_day, send_at, f"survey:{record.id}")]


RuleFunction = Callable[[Any, Today], list[Due]]
VEHICLE_RULES: dict[str, RuleFunction] = {
    "maintenance": maintenance,
    "first_service": first_service,
    "inspection": inspection,
    "insurance": insurance,
    "warranty": warranty,
    "delivery_callback": delivery_callback,
}
APPOINTMENT_RULES: dict[str, RuleFunction] = {
    "appointment_tomorrow": appointment_tomorrow,
    "appointment_soon": appointment_soon,
    "no_show": no_show,
}
CUSTOMER_RULES: dict[str, RuleFunction] = {"birthday": birthday, "holiday": holiday, "tier_care": tier_care}


def due_for(code: str, subject: Any, today: Today) -> list[Due]:
    """Runs one rule by its code on one subject."""
    table: dict[str, RuleFunction] = {**VEHICLE_RULES, **APPOINTMENT_RULES, **CUSTOMER_RULES, "survey": survey}
    return table[code](subject, today)
