"""The reminder rules as pure functions: the facts of one subject and a frozen clock in, reminders out."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.dealer_config import DealerConfig, ReminderRule
from scheduler import rules
from scheduler.rules import (
    AppointmentFacts,
    CustomerFacts,
    DealerTime,
    ServiceRecordFacts,
    Today,
    VehicleFacts,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 6, 1)  # a Monday
# the planner's early run: 07:00 in Shanghai is 23:00 UTC the day before
NOW = datetime(2026, 6, 1, 7, 0, tzinfo=SHANGHAI)


def today(now: datetime = NOW, **config: object) -> Today:
    return Today.of(now.astimezone(UTC), "Asia/Shanghai", DealerConfig(**config))  # type: ignore[arg-type]


def local(moment: datetime) -> datetime:
    return moment.astimezone(SHANGHAI)


def at_ten(day: date) -> datetime:
    return datetime.combine(day, time(10), SHANGHAI).astimezone(UTC)


# -- the catalogue ---------------------------------------------------------------------------------


def test_every_rule_of_the_contract_is_in_the_catalogue_with_its_outbox_kind() -> None:
    assert set(rules.RULES) == {
        "maintenance", "first_service", "inspection", "insurance", "warranty", "appointment_tomorrow",
        "appointment_soon", "no_show", "delivery_callback", "birthday", "holiday", "tier_care", "survey",
    }
    assert rules.RULES["insurance"].kind == "reminder:insurance"
    assert rules.RULES["survey"].kind == "survey"


def test_only_appointment_reminders_are_outside_the_weekly_care_cap() -> None:
    uncapped = {code for code, rule in rules.RULES.items() if not rule.capped}
    assert uncapped == {"appointment_tomorrow", "appointment_soon"}


def test_a_dealer_overrides_lead_offsets_send_hour_and_wording_per_rule() -> None:
    config = DealerConfig(reminders={
        "maintenance": ReminderRule(lead_days=14, send_hour=15, template_zh="{name}，该保养了"),
        "insurance": ReminderRule(offsets_days=[1, 15]),
        "birthday": ReminderRule(enabled=False),
    })
    maintenance = rules.rule_settings(config, "maintenance")
    assert (maintenance.offsets_days, maintenance.send_hour, maintenance.template("zh")) == ((14,), 15, "{name}，该保养了")
    assert rules.rule_settings(config, "insurance").offsets_days == (15, 1)
    assert rules.rule_settings(config, "birthday").enabled is False
    assert rules.rule_settings(config, "inspection").offsets_days == (30,)  # untouched: the default


def test_the_day_before_reminder_stays_the_day_before_whatever_lead_a_dealer_sets() -> None:
    config = DealerConfig(reminders={"appointment_tomorrow": ReminderRule(lead_days=3, send_hour=17)})
    settings = rules.rule_settings(config, "appointment_tomorrow")
    assert (settings.offsets_days, settings.send_hour) == ((1,), 17)


# -- the clock -------------------------------------------------------------------------------------


def test_the_send_hour_is_local_time_converted_to_utc() -> None:
    clock = DealerTime(SHANGHAI)
    assert clock.at(TODAY, 10) == datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def test_a_send_hour_inside_the_dealers_quiet_hours_moves_to_their_end() -> None:
    clock = DealerTime(SHANGHAI, (time(20, 0), time(9, 30)))
    assert local(clock.at(TODAY, 8)) == datetime(2026, 6, 1, 9, 30, tzinfo=SHANGHAI)
    assert local(clock.next_allowed(datetime(2026, 6, 1, 22, 15, tzinfo=SHANGHAI))) == datetime(
        2026, 6, 2, 9, 30, tzinfo=SHANGHAI
    )
    assert not clock.is_quiet(datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI))


def test_daytime_quiet_hours_that_do_not_cross_midnight_work_too() -> None:
    clock = DealerTime(SHANGHAI, (time(12, 0), time(14, 0)))
    assert local(clock.at(TODAY, 13)) == datetime(2026, 6, 1, 14, 0, tzinfo=SHANGHAI)
    assert local(clock.at(TODAY, 11)) == datetime(2026, 6, 1, 11, 0, tzinfo=SHANGHAI)


# -- maintenance and first service -----------------------------------------------------------------


def test_maintenance_is_due_interval_days_after_the_last_service_and_reminded_lead_days_before() -> None:
    car = VehicleFacts(7, delivery_date=date(2024, 1, 1), last_service_date=TODAY - timedelta(days=180 - 7))
    [due] = rules.maintenance(car, today())
    assert due.due == TODAY + timedelta(days=7)
    assert due.not_before == at_ten(TODAY)
    assert due.dedupe_key == f"maintenance:7:{TODAY + timedelta(days=7)}"


def test_maintenance_comes_earlier_when_the_owner_drives_a_lot() -> None:
    # 100 km a day up to the last service: 5,000 km take 50 days, well before 180
    serviced = date(2026, 4, 20)
    car = VehicleFacts(7, delivery_date=serviced - timedelta(days=200), last_service_date=serviced, last_service_mileage=20_000)
    assert rules.maintenance_due(car, interval_days=180, interval_km=5000) == serviced + timedelta(days=50)
    [due] = rules.maintenance(car, today(now=datetime(2026, 6, 2, 7, 0, tzinfo=SHANGHAI)))
    assert due.due == date(2026, 6, 9)


def test_maintenance_is_not_yet_due_weeks_before() -> None:
    car = VehicleFacts(7, last_service_date=TODAY - timedelta(days=100))
    assert rules.maintenance(car, today()) == []


def test_maintenance_long_overdue_is_past_the_catch_up_window() -> None:
    car = VehicleFacts(7, last_service_date=TODAY - timedelta(days=400))
    assert rules.maintenance(car, today()) == []


def test_a_stopped_planner_catches_up_a_few_days_late_and_plans_tomorrow_ahead() -> None:
    three_days_late = VehicleFacts(7, last_service_date=TODAY - timedelta(days=180 - 7 + 3))
    tomorrow = VehicleFacts(8, last_service_date=TODAY - timedelta(days=180 - 7 - 1))
    assert rules.maintenance(three_days_late, today())[0].not_before == at_ten(TODAY - timedelta(days=3))
    assert rules.maintenance(tomorrow, today())[0].not_before == at_ten(TODAY + timedelta(days=1))
    assert rules.maintenance(VehicleFacts(9, last_service_date=TODAY - timedelta(days=180 - 7 + 4)), today()) == []


def test_maintenance_lead_and_send_hour_follow_the_dealer() -> None:
    car = VehicleFacts(7, last_service_date=TODAY - timedelta(days=180 - 14))
    dealer = today(reminders={"maintenance": ReminderRule(lead_days=14, send_hour=16)})
    [due] = rules.maintenance(car, dealer)
    assert local(due.not_before) == datetime(2026, 6, 1, 16, 0, tzinfo=SHANGHAI)
    assert rules.maintenance(car, today()) == []  # with the default 7 days it is a week away


def test_a_disabled_rule_plans_nothing() -> None:
    car = VehicleFacts(7, last_service_date=TODAY - timedelta(days=180 - 7))
    assert rules.maintenance(car, today(reminders={"maintenance": ReminderRule(enabled=False)})) == []


def test_first_service_is_due_first_service_days_after_delivery_for_a_car_never_serviced() -> None:
    car = VehicleFacts(3, delivery_date=TODAY - timedelta(days=90 - 7), mileage=1200)
    [due] = rules.first_service(car, today())
    assert due.due == TODAY + timedelta(days=7)
    assert due.dedupe_key == f"first_service:3:{car.delivery_date}"
    serviced = car._replace(last_service_date=TODAY - timedelta(days=10))
    assert rules.first_service(serviced, today()) == []


def test_first_service_comes_earlier_by_distance() -> None:
    # 2,432 km in 30 days: 3,000 km after 37 days, so due in a week and reminded now
    car = VehicleFacts(3, delivery_date=TODAY - timedelta(days=30), mileage=2432)
    assert rules.first_service_due(car, today=TODAY, days=90, km=3000) == TODAY + timedelta(days=7)
    assert rules.first_service(car, today())[0].not_before == at_ten(TODAY)


# -- dated documents -------------------------------------------------------------------------------


def test_inspection_is_reminded_thirty_days_before_it_is_due() -> None:
    [due] = rules.inspection(VehicleFacts(5, inspection_due=TODAY + timedelta(days=30)), today())
    assert (due.dedupe_key, due.not_before) == (f"inspection:5:{TODAY + timedelta(days=30)}", at_ten(TODAY))
    assert rules.inspection(VehicleFacts(5, inspection_due=TODAY + timedelta(days=40)), today()) == []


def test_insurance_is_reminded_thirty_seven_and_one_day_before_each_with_its_own_key() -> None:
    expiry = date(2026, 7, 1)
    keys = {}
    for before in (30, 7, 1):
        day = expiry - timedelta(days=before)
        [due] = rules.insurance(VehicleFacts(5, insurance_due=expiry), today(now=datetime.combine(day, time(7), SHANGHAI)))
        keys[before] = due.dedupe_key
        assert due.not_before == at_ten(day)
    assert keys == {30: "insurance:5:2026-07-01:30", 7: "insurance:5:2026-07-01:7", 1: "insurance:5:2026-07-01:1"}


def test_a_planner_catching_up_sends_only_the_latest_insurance_reminder() -> None:
    config = {"reminders": {"insurance": ReminderRule(offsets_days=[3, 1])}}
    [due] = rules.insurance(VehicleFacts(5, insurance_due=TODAY + timedelta(days=1)), today(**config))
    assert due.dedupe_key.endswith(":1")


def test_warranty_expiry_is_reminded_thirty_days_before() -> None:
    [due] = rules.warranty(VehicleFacts(5, warranty_until=TODAY + timedelta(days=30)), today())
    assert due.dedupe_key == f"warranty:5:{TODAY + timedelta(days=30)}"


def test_the_delivery_call_back_goes_the_day_after_delivery() -> None:
    [due] = rules.delivery_callback(VehicleFacts(5, delivery_date=TODAY - timedelta(days=1)), today())
    assert (due.dedupe_key, due.not_before) == (f"delivery_callback:5:{TODAY - timedelta(days=1)}", at_ten(TODAY))
    assert rules.delivery_callback(VehicleFacts(5, delivery_date=TODAY - timedelta(days=30)), today()) == []


# -- appointments ----------------------------------------------------------------------------------


def appointment(starts: datetime, status: str = "booked", created: datetime | None = None) -> AppointmentFacts:
    return AppointmentFacts(11, starts.astimezone(UTC), status, (created or starts - timedelta(days=5)).astimezone(UTC))


def test_the_appointment_is_reminded_the_day_before_at_the_send_hour() -> None:
    visit = appointment(datetime(2026, 6, 2, 14, 30, tzinfo=SHANGHAI))
    [due] = rules.appointment_tomorrow(visit, today())
    assert due.not_before == at_ten(TODAY)
    assert due.dedupe_key == "appointment_tomorrow:11:2026-06-02:1430"


def test_only_booked_or_confirmed_appointments_are_reminded() -> None:
    starts = datetime(2026, 6, 2, 14, 30, tzinfo=SHANGHAI)
    assert rules.appointment_tomorrow(appointment(starts, "confirmed"), today())
    assert rules.appointment_tomorrow(appointment(starts, "cancelled"), today()) == []
    assert rules.appointment_soon(appointment(starts, "done"), today()) == []


def test_an_owner_who_booked_after_the_reminder_time_gets_no_day_before_reminder() -> None:
    visit = appointment(datetime(2026, 6, 2, 14, 30, tzinfo=SHANGHAI), created=datetime(2026, 6, 1, 15, 0, tzinfo=SHANGHAI))
    assert rules.appointment_tomorrow(visit, today(now=datetime(2026, 6, 1, 15, 5, tzinfo=SHANGHAI))) == []


def test_the_appointment_is_reminded_two_hours_before_it_starts() -> None:
    visit = appointment(datetime(2026, 6, 1, 14, 30, tzinfo=SHANGHAI))
    [due] = rules.appointment_soon(visit, today())
    assert local(due.not_before) == datetime(2026, 6, 1, 12, 30, tzinfo=SHANGHAI)
    assert due.dedupe_key == "appointment_soon:11:2026-06-01:1430"


def test_no_two_hour_reminder_when_that_falls_in_the_quiet_hours() -> None:
    early = appointment(datetime(2026, 6, 1, 9, 0, tzinfo=SHANGHAI))  # 07:00 is quiet until 08:00
    assert rules.appointment_soon(early, today(now=datetime(2026, 6, 1, 6, 0, tzinfo=SHANGHAI))) == []


def test_no_reminder_for_an_appointment_that_has_started() -> None:
    started = appointment(datetime(2026, 6, 1, 6, 30, tzinfo=SHANGHAI))
    assert rules.appointment_soon(started, today()) == []
    assert rules.appointment_tomorrow(started, today()) == []


def test_a_no_show_is_followed_up_the_next_day() -> None:
    missed = appointment(datetime(2026, 5, 31, 10, 0, tzinfo=SHANGHAI), "no_show")
    [due] = rules.no_show(missed, today())
    assert (due.dedupe_key, due.not_before) == ("no_show:11:2026-05-31", at_ten(TODAY))
    assert rules.no_show(missed._replace(status="done"), today()) == []


# -- owners ----------------------------------------------------------------------------------------


def test_birthday_wishes_go_on_the_day() -> None:
    [due] = rules.birthday(CustomerFacts(4, birthday=date(1985, 6, 1)), today())
    assert (due.dedupe_key, due.not_before) == ("birthday:4:2026", at_ten(TODAY))
    assert rules.birthday(CustomerFacts(4, birthday=date(1985, 5, 30)), today()) == []  # never late


def test_a_leap_day_birthday_is_wished_on_28_february_in_other_years() -> None:
    leap = CustomerFacts(4, birthday=date(1992, 2, 29))
    [due] = rules.birthday(leap, today(now=datetime(2027, 2, 28, 7, 0, tzinfo=SHANGHAI)))
    assert due.due == date(2027, 2, 28)


def test_holiday_wishes_go_on_the_day_for_the_holidays_the_dealer_greets() -> None:
    spring = datetime(2027, 2, 6, 7, 0, tzinfo=SHANGHAI)
    [due] = rules.holiday(CustomerFacts(4), today(now=spring))
    assert (due.dedupe_key, due.holiday) == ("holiday:4:spring_festival:2027", "spring_festival")
    assert due.not_before == at_ten(date(2027, 2, 6))
    assert rules.holiday(CustomerFacts(4), today(now=spring, holidays_greeted=["national_day"])) == []


def test_a_holiday_tomorrow_is_planned_today_for_tomorrow_morning() -> None:
    [due] = rules.holiday(CustomerFacts(4), today(now=datetime(2026, 9, 30, 7, 0, tzinfo=SHANGHAI)))
    assert due.dedupe_key == "holiday:4:national_day:2026"
    assert local(due.not_before) == datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("tier, cadence", [("A", 60), ("B", 120), ("C", 240)])
def test_tier_care_yields_one_row_per_owner_each_cadence_period(tier: str, cadence: int) -> None:
    keys = set()
    for offset in range(2 * cadence):
        moment = NOW + timedelta(days=offset)
        keys |= {due.dedupe_key for due in rules.tier_care(CustomerFacts(123, tier=tier), today(now=moment))}
    assert len(keys) == 2


def test_tier_care_spreads_owners_over_the_cadence() -> None:
    due_today = [c for c in range(1, 241) if rules.tier_care(CustomerFacts(c, tier="C"), today())]
    # the horizon is five days (three back, today, tomorrow): 5 of every 240 owners
    assert len(due_today) == 5


def test_the_survey_goes_survey_delay_hours_after_the_repair_order_closes() -> None:
    closed = datetime(2026, 5, 31, 15, 30, tzinfo=SHANGHAI)
    [due] = rules.survey(ServiceRecordFacts(9, closed.astimezone(UTC)), today())
    assert local(due.not_before) == datetime(2026, 6, 1, 15, 30, tzinfo=SHANGHAI)
    assert due.dedupe_key == "survey:9"


def test_a_survey_that_would_go_at_night_waits_for_the_morning() -> None:
    closed = datetime(2026, 5, 31, 21, 40, tzinfo=SHANGHAI)
    [due] = rules.survey(ServiceRecordFacts(9, closed.astimezone(UTC)), today(survey_delay_hours=2))
    assert local(due.not_before) == datetime(2026, 6, 1, 8, 0, tzinfo=SHANGHAI)


def test_old_repair_orders_get_no_survey() -> None:
    closed = datetime(2026, 5, 1, 15, 0, tzinfo=SHANGHAI)
    assert rules.survey(ServiceRecordFacts(9, closed.astimezone(UTC)), today()) == []
    assert rules.survey(ServiceRecordFacts(9, None), today()) == []


@pytest.mark.parametrize("code", sorted(set(rules.RULES) - {"appointment_soon", "survey"}))
def test_no_rule_ever_sends_inside_the_quiet_hours(code: str) -> None:
    dealer = today(reminders={code: ReminderRule(send_hour=8)}, quiet_hours=(time(20, 0), time(9, 0)))
    subjects = {
        "maintenance": VehicleFacts(1, last_service_date=TODAY - timedelta(days=173)),
        "first_service": VehicleFacts(1, delivery_date=TODAY - timedelta(days=83)),
        "inspection": VehicleFacts(1, inspection_due=TODAY + timedelta(days=30)),
        "insurance": VehicleFacts(1, insurance_due=TODAY + timedelta(days=30)),
        "warranty": VehicleFacts(1, warranty_until=TODAY + timedelta(days=30)),
        "delivery_callback": VehicleFacts(1, delivery_date=TODAY - timedelta(days=1)),
        "appointment_tomorrow": appointment(datetime(2026, 6, 2, 14, 0, tzinfo=SHANGHAI)),
        "no_show": appointment(datetime(2026, 5, 31, 14, 0, tzinfo=SHANGHAI), "no_show"),
        "birthday": CustomerFacts(1, birthday=date(1990, 6, 1)),
        "holiday": CustomerFacts(1),
        "tier_care": CustomerFacts(next(c for c in range(1, 241) if rules.tier_care(CustomerFacts(c), dealer)), tier="C"),
    }
    if code == "holiday":
        dealer = today(now=datetime(2026, 10, 1, 7, 0, tzinfo=SHANGHAI), quiet_hours=(time(20, 0), time(9, 0)),
                       reminders={code: ReminderRule(send_hour=8)})
    [due] = rules.due_for(code, subjects[code], dealer)
    assert local(due.not_before).time() == time(9, 0)
