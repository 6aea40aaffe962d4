"""The planner on both databases: due reminders become outbox rows once, with a frozen clock."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.db import Database
from bot.dealer_config import ReminderRule
from bot.models import (
    Appointment,
    Channel,
    ChannelIdentity,
    Customer,
    Dealer,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Survey,
    Vehicle,
)
from scheduler import rules
from scheduler.planner import PlanReport, plan
from tests.factories import make_dealer

pytestmark = pytest.mark.db

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 7, 0, tzinfo=SHANGHAI).astimezone(UTC)  # the early-morning run
TEN_AM = datetime(2026, 6, 1, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


def owner(session: Session, dealer: Dealer, *, n: int = 1, lang: str = "zh", phone: str | None = "auto",
          tier: str = "B", birthday: date | None = None, name: str = "王先生", **car: Any) -> tuple[Customer, Vehicle]:
    customer = Customer(dealer_id=dealer.id, name=name, language=lang, tier=tier, birthday=birthday,
                        phone=f"+861380013{n:04d}" if phone == "auto" else phone)
    session.add(customer)
    session.flush()
    vehicle = Vehicle(dealer_id=dealer.id, customer_id=customer.id, plate=f"粤B{n:05d}", model="凯美瑞", **car)
    session.add(vehicle)
    session.flush()
    return customer, vehicle


def rows(db: Database) -> list[Outbox]:
    with db.sessions() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def by_key(db: Database) -> dict[str, Outbox]:
    return {row.dedupe_key: row for row in rows(db)}


def test_a_due_maintenance_becomes_one_pending_outbox_row_for_the_channel_ladder(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        customer, car = owner(session, dealer, last_service_date=TODAY - timedelta(days=173), delivery_date=date(2024, 1, 5))

    report = plan(db, NOW)

    [row] = rows(db)
    assert report.rows_written == 1 and report.by_rule["maintenance"] == 1
    assert row.kind == "reminder:maintenance"
    assert row.dedupe_key == f"maintenance:{car.id}:{TODAY + timedelta(days=7)}"
    assert (row.channel, row.address, row.conversation_id, row.message_id) == (None, None, None, None)
    assert (row.customer_id, row.status, row.attempts) == (customer.id, OutboxStatus.pending, 0)
    assert row.not_before == TEN_AM
    assert row.body.startswith("王先生您好，您的爱车粤B00001预计在2026年6月8日前后到保养时间了，建议近期安排小保养")
    assert row.body.endswith("回复1或“预约”即可预约。") and "【" not in row.body
    assert row.data == {"rule": "maintenance", "lang": "zh", "due": "2026-06-08", "vehicle_id": car.id,
                        "plate": "粤B00001", "service": "minor_service"}


def test_nothing_is_planned_before_it_falls_due(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        owner(session, dealer, last_service_date=TODAY - timedelta(days=100), insurance_due=TODAY + timedelta(days=60))

    assert plan(db, NOW).rows_written == 0


def _world(session: Session, dealer: Dealer) -> dict[str, int]:
    """One subject due today for every rule; returns the ids the keys name."""
    ids: dict[str, int] = {}
    _, car = owner(session, dealer, n=1, last_service_date=TODAY - timedelta(days=173))
    ids["maintenance"] = car.id
    _, car = owner(session, dealer, n=2, delivery_date=TODAY - timedelta(days=83))
    ids["first_service"] = car.id
    _, car = owner(session, dealer, n=3, last_service_date=TODAY - timedelta(days=20), inspection_due=TODAY + timedelta(days=30))
    ids["inspection"] = car.id
    _, car = owner(session, dealer, n=4, last_service_date=TODAY - timedelta(days=20), insurance_due=TODAY + timedelta(days=7))
    ids["insurance"] = car.id
    _, car = owner(session, dealer, n=5, last_service_date=TODAY - timedelta(days=20), warranty_until=TODAY + timedelta(days=30))
    ids["warranty"] = car.id
    customer, car = owner(session, dealer, n=6, delivery_date=TODAY - timedelta(days=1))
    ids["delivery_callback"] = car.id
    customer, car = owner(session, dealer, n=7, last_service_date=TODAY - timedelta(days=20))
    for code, starts, status in (
        ("appointment_tomorrow", datetime(2026, 6, 2, 14, 0, tzinfo=SHANGHAI), "booked"),
        ("appointment_soon", datetime(2026, 6, 1, 15, 0, tzinfo=SHANGHAI), "confirmed"),
        ("no_show", datetime(2026, 5, 31, 9, 30, tzinfo=SHANGHAI), "no_show"),
    ):
        visit = Appointment(dealer_id=dealer.id, reference=f"BK-{code}", customer_id=customer.id, vehicle_id=car.id,
                            service_type="minor_service", starts_at=starts.astimezone(UTC),
                            ends_at=(starts + timedelta(hours=1)).astimezone(UTC), status=status,
                            created_at=(starts - timedelta(days=4)).astimezone(UTC))
        session.add(visit)
        session.flush()
        ids[code] = visit.id
    record = ServiceRecord(dealer_id=dealer.id, vehicle_id=car.id, customer_id=customer.id, order_no="RO1",
                           service_type="minor_service", opened_on=TODAY - timedelta(days=1),
                           closed_at=datetime(2026, 5, 31, 16, 0, tzinfo=SHANGHAI).astimezone(UTC))
    session.add(record)
    session.flush()
    ids["survey"] = record.id
    customer, _ = owner(session, dealer, n=8, tier="A", birthday=date(1988, 6, 1), last_service_date=TODAY - timedelta(days=20))
    ids["birthday"] = customer.id
    return ids


def test_every_rule_plans_its_row_with_its_kind_and_key(db: Database) -> None:
    with db.transaction() as session:
        ids = _world(session, make_dealer(session))

    report = plan(db, NOW)

    planned = by_key(db)
    expected = {
        f"maintenance:{ids['maintenance']}:2026-06-08",
        f"first_service:{ids['first_service']}:2026-03-10",
        f"inspection:{ids['inspection']}:2026-07-01",
        f"insurance:{ids['insurance']}:2026-06-08:7",
        f"warranty:{ids['warranty']}:2026-07-01",
        f"delivery_callback:{ids['delivery_callback']}:2026-05-31",
        f"appointment_tomorrow:{ids['appointment_tomorrow']}:2026-06-02:1400",
        f"appointment_soon:{ids['appointment_soon']}:2026-06-01:1500",
        # tomorrow's appointment is two hours off tomorrow at noon: planned now, for then
        f"appointment_soon:{ids['appointment_tomorrow']}:2026-06-02:1400",
        f"no_show:{ids['no_show']}:2026-05-31",
        f"survey:{ids['survey']}",
        f"birthday:{ids['birthday']}:2026",
    }
    assert expected <= planned.keys()
    assert {key for key in planned if not key.startswith("tier_care:")} == expected
    for key in expected:
        code = key.split(":")[0]
        assert planned[key].kind == rules.RULES[code].kind
        assert planned[key].data["rule"] == code
        assert report.by_rule[code] == sum(k.startswith(f"{code}:") for k in planned)
    assert report.rows_written == len(planned)


def test_running_the_planner_twice_writes_nothing_new(db: Database) -> None:
    with db.transaction() as session:
        _world(session, make_dealer(session))
    first = plan(db, NOW)
    later_that_day = plan(db, NOW + timedelta(hours=3))

    assert first.rows_written > 10
    assert later_that_day.rows_written == 0 and set(later_that_day.by_rule.values()) == {0}
    assert len(rows(db)) == first.rows_written
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Survey)) == 1


def test_every_send_time_is_outside_the_quiet_hours(db: Database) -> None:
    with db.transaction() as session:
        _world(session, make_dealer(session))
    plan(db, NOW)

    for row in rows(db):
        at = row.not_before.astimezone(SHANGHAI).time()
        assert time(8, 0) <= at < time(21, 0), row.dedupe_key


def test_a_rule_the_dealer_disabled_plans_nothing(db: Database) -> None:
    off = {code: ReminderRule(enabled=False) for code in ("maintenance", "survey", "appointment_tomorrow", "birthday")}
    with db.transaction() as session:
        _world(session, make_dealer(session, reminders=off))

    report = plan(db, NOW)

    assert all(report.by_rule[code] == 0 for code in off)
    assert report.by_rule["insurance"] == 1
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Survey)) == 0


def test_the_dealers_lead_days_send_hour_and_wording_apply(db: Database) -> None:
    own = ReminderRule(lead_days=14, send_hour=15, template_zh="{name}：{plate}将于{date}到期保养，{dealer}提醒您。")
    with db.transaction() as session:
        dealer = make_dealer(session, reminders={"maintenance": own})
        owner(session, dealer, n=1, last_service_date=TODAY - timedelta(days=180 - 14))
        owner(session, dealer, n=2, last_service_date=TODAY - timedelta(days=180 - 7))  # the default lead: not now

    [row] = rows(db) if plan(db, NOW).rows_written else []
    assert row.not_before == datetime(2026, 6, 1, 15, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert row.body == "王先生：粤B00001将于2026年6月15日到期保养，测试丰田4S店提醒您。"


def test_an_owner_nobody_can_reach_is_skipped(db: Database) -> None:
    due = {"last_service_date": TODAY - timedelta(days=173)}
    with db.transaction() as session:
        dealer = make_dealer(session)
        gone, _ = owner(session, dealer, n=1, phone=None, **due)
        session.add(ChannelIdentity(dealer_id=dealer.id, customer_id=gone.id, channel=Channel.wechat, address="o-gone",
                                    opted_out=True))
        sms_off, _ = owner(session, dealer, n=2, **due)
        session.add(ChannelIdentity(dealer_id=dealer.id, customer_id=sms_off.id, channel=Channel.sms,
                                    address=sms_off.phone, opted_out=True))
        on_wechat, _ = owner(session, dealer, n=3, **due)
        session.add_all([
            ChannelIdentity(dealer_id=dealer.id, customer_id=on_wechat.id, channel=Channel.sms, address=on_wechat.phone,
                            opted_out=True),
            ChannelIdentity(dealer_id=dealer.id, customer_id=on_wechat.id, channel=Channel.wechat, address="o-here"),
        ])
        phone_only, _ = owner(session, dealer, n=4, **due)

    plan(db, NOW)

    assert {row.customer_id for row in rows(db)} == {on_wechat.id, phone_only.id}


def test_an_appointment_that_has_started_gets_no_reminder(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        customer, car = owner(session, dealer)
        starts = datetime(2026, 6, 1, 10, 0, tzinfo=SHANGHAI)
        session.add(Appointment(dealer_id=dealer.id, reference="BK1", customer_id=customer.id, vehicle_id=car.id,
                                service_type="minor_service", starts_at=starts.astimezone(UTC),
                                ends_at=(starts + timedelta(hours=1)).astimezone(UTC), status="booked",
                                created_at=(starts - timedelta(days=3)).astimezone(UTC)))

    assert plan(db, datetime(2026, 6, 1, 10, 5, tzinfo=SHANGHAI)).rows_written == 0
    assert plan(db, datetime(2026, 6, 1, 7, 0, tzinfo=SHANGHAI)).by_rule["appointment_soon"] == 1


def test_the_appointment_reminder_carries_the_appointment_for_the_flows(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        customer, car = owner(session, dealer)
        starts = datetime(2026, 6, 2, 14, 30, tzinfo=SHANGHAI)
        visit = Appointment(dealer_id=dealer.id, reference="BK1", customer_id=customer.id, vehicle_id=car.id,
                            service_type="minor_service", starts_at=starts.astimezone(UTC),
                            ends_at=(starts + timedelta(hours=1)).astimezone(UTC), status="confirmed",
                            created_at=(starts - timedelta(days=3)).astimezone(UTC))
        session.add(visit)
        session.flush()

    plan(db, NOW)

    [row] = [row for row in rows(db) if row.kind == "reminder:appointment_tomorrow"]
    assert row.data["appointment_id"] == visit.id
    assert datetime.fromisoformat(row.data["appointment_starts_at"]) == starts
    assert row.data["service"] == "minor_service"
    assert "明天（2026年6月2日）14:30" in row.body


def test_the_survey_creates_its_survey_row_and_names_it_with_the_scale(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, survey_kind="nps")
        customer, car = owner(session, dealer)
        record = ServiceRecord(dealer_id=dealer.id, vehicle_id=car.id, customer_id=customer.id, order_no="RO1",
                               service_type="minor_service", opened_on=TODAY - timedelta(days=1),
                               closed_at=datetime(2026, 5, 31, 16, 0, tzinfo=SHANGHAI).astimezone(UTC))
        session.add(record)
        session.flush()

    plan(db, NOW)

    with db.sessions() as session:
        survey = session.scalars(select(Survey)).one()
    [row] = rows(db)
    assert (survey.service_record_id, survey.kind, survey.customer_id) == (record.id, "nps", customer.id)
    assert row.kind == "survey" and row.dedupe_key == f"survey:{record.id}"
    assert row.data["survey_id"] == survey.id and row.data["scale"] == "nps"
    assert row.not_before == datetime(2026, 6, 1, 16, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert "0-10" in row.body


def test_an_english_speaking_owner_gets_english(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, extra={"name_en": "Test Toyota"})
        owner(session, dealer, lang="en", name="David Wong", birthday=date(1980, 6, 1))
        owner(session, dealer, n=2, lang="en", name="", birthday=date(1981, 6, 1))

    plan(db, NOW)

    bodies = sorted(row.body for row in rows(db) if row.kind == "reminder:birthday")
    assert bodies == [
        "Hello David Wong, happy birthday from all of us at Test Toyota! Wishing you a wonderful year and safe travels.",
        "Hello customer, happy birthday from all of us at Test Toyota! Wishing you a wonderful year and safe travels.",
    ]


def test_every_reachable_owner_is_greeted_on_a_holiday_the_dealer_greets(db: Database) -> None:
    spring = datetime(2027, 2, 6, 7, 0, tzinfo=SHANGHAI)
    with db.transaction() as session:
        dealer = make_dealer(session, holidays_greeted=["spring_festival"], tier_cadence_days={})
        quiet = make_dealer(session, slug="other", holidays_greeted=["national_day"], tier_cadence_days={})
        greeted = [owner(session, dealer, n=n)[0].id for n in range(1, 4)]
        owner(session, quiet, n=9)

    report = plan(db, spring)

    assert report.by_rule["holiday"] == 3
    holiday_rows = [row for row in rows(db) if row.kind == "reminder:holiday"]
    assert sorted(row.customer_id for row in holiday_rows) == greeted
    assert holiday_rows[0].dedupe_key == f"holiday:{greeted[0]}:spring_festival:2027"
    assert "新春快乐" in holiday_rows[0].body


def test_tier_care_writes_one_row_per_owner_each_period(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, tier_cadence_days={"A": 60})
        customers = [owner(session, dealer, n=n, tier="A")[0].id for n in range(1, 61)]

    reports: list[PlanReport] = [plan(db, NOW + timedelta(days=day)) for day in range(0, 60, 3)]

    assert sum(r.by_rule["tier_care"] for r in reports) == len(rows(db))
    due: dict[int, list[date]] = {}
    for row in rows(db):
        due.setdefault(row.customer_id, []).append(date.fromisoformat(row.data["due"]))
    assert sorted(due) == customers
    # the runs covered 62 days: an owner due on one of the first two was due again 60 days later
    assert all(len(days) == 1 or (len(days) == 2 and days[1] - days[0] == timedelta(days=60)) for days in due.values())
    assert sum(len(days) for days in due.values()) == 62


def test_planning_one_dealer_leaves_the_others_alone(db: Database) -> None:
    due = {"last_service_date": TODAY - timedelta(days=173)}
    with db.transaction() as session:
        one = make_dealer(session, slug="one")
        other = make_dealer(session, slug="other")
        owner(session, one, n=1, **due)
        owner(session, other, n=2, **due)

    report = plan(db, NOW, dealer_id=one.id)

    assert report.rows_written == 1
    assert {row.dealer_id for row in rows(db)} == {one.id}


def test_a_naive_now_is_refused(db: Database) -> None:
    with pytest.raises(ValueError):
        plan(db, datetime(2026, 6, 1, 7, 0))


def test_a_leap_day_birthday_is_found_on_28_february_outside_leap_years(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, tier_cadence_days={})
        leap, _ = owner(session, dealer, birthday=date(1992, 2, 29))

    report = plan(db, datetime(2027, 2, 28, 7, 0, tzinfo=SHANGHAI))

    assert report.by_rule["birthday"] == 1
    assert rows(db)[0].dedupe_key == f"birthday:{leap.id}:2027"


def test_a_dealer_with_a_broken_configuration_does_not_stop_the_others(db: Database) -> None:
    due = {"last_service_date": TODAY - timedelta(days=173)}
    with db.transaction() as session:
        broken = make_dealer(session, slug="broken")
        broken.config = {**broken.config, "maintenance_interval_days": "often"}
        fine = make_dealer(session, slug="fine")
        owner(session, broken, n=1, **due)
        owner(session, fine, n=2, **due)

    report = plan(db, NOW)

    assert report.dealers_failed == [broken.id]
    assert {row.dealer_id for row in rows(db)} == {fine.id}
