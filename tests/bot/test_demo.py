"""The demo dealer: fifty believable owners, valid plates and VINs, consistent history, idempotent."""
from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import phonenumbers
import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.demo import (
    DEMO_FAKE_TWILIO_PORT,
    DEMO_WECHAT,
    demo_loaded,
    load_demo,
    vin_check_digit,
)
from bot.models import (
    Base,
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Customer,
    Dealer,
    ServiceRecord,
    Staff,
    StaffRole,
    Vehicle,
)
from bot.passwords import verify_password
from integrations.twilio.client import load_account
from integrations.twilio.fake_api import ACCOUNT_SID as FAKE_ACCOUNT_SID
from integrations.twilio.fake_api import AUTH_TOKEN as FAKE_AUTH_TOKEN

TODAY = date(2026, 3, 15)
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTER = "A-HJ-NP-Z"  # plates and VINs never use I or O
REGULAR_PLATE = re.compile(rf"^[{PROVINCES}][{LETTER}][{LETTER}0-9]{{5}}$")
NEW_ENERGY_PLATE = re.compile(rf"^[{PROVINCES}][{LETTER}](?:[DF][{LETTER}0-9]\d{{4}}|\d{{5}}[DF])$")
VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
OPENID = re.compile(r"^o[A-Za-z0-9_-]{27}$")

pytestmark = pytest.mark.db


@pytest.fixture
def seeded(db: Database) -> Database:
    with db.transaction() as session:
        load_demo(session, today=TODAY)
    return db


def _all(db: Database, model: type) -> list:  # type: ignore[type-arg]
    with db.transaction() as session:
        return list(session.scalars(select(model)))


def test_demo_has_fifty_owners_each_with_a_car_and_a_simulator_identity(seeded: Database) -> None:
    customers = _all(seeded, Customer)
    vehicles = _all(seeded, Vehicle)
    identities = _all(seeded, ChannelIdentity)

    assert len(customers) == 50
    cars = Counter(v.customer_id for v in vehicles)
    assert all(1 <= cars[c.id] <= 2 for c in customers)
    simulator = {i.customer_id: i.address for i in identities if i.channel == Channel.simulator}
    assert simulator == {c.id: f"sim:{c.id}" for c in customers}
    sms = {i.customer_id: i.address for i in identities if i.channel == Channel.sms}
    assert sms == {c.id: c.phone for c in customers}


def test_demo_owners_look_real(seeded: Database) -> None:
    customers = _all(seeded, Customer)
    staff = {s.username: s for s in _all(seeded, Staff)}

    english = [c for c in customers if c.language == "en"]
    assert 3 <= len(english) <= 4
    assert all(re.fullmatch(r"[A-Za-z]+ [A-Za-z]+", c.name) for c in english)
    chinese = [c for c in customers if c.language == "zh"]
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", c.name) for c in chinese)
    assert len({c.name for c in customers}) == 50
    assert {c.tier for c in customers} == {"A", "B", "C"}
    assert all(c.birthday and 18 <= (TODAY - c.birthday).days // 365 <= 80 for c in customers)
    assert all(c.advisor_id == staff["agent"].id for c in customers)


def test_demo_phones_are_unique_mainland_mobiles_in_e164(seeded: Database) -> None:
    phones = [c.phone for c in _all(seeded, Customer)]

    assert len(set(phones)) == 50
    for phone in phones:
        assert re.fullmatch(r"\+861[3-9]\d{9}", phone)
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE


def test_demo_plates_are_valid_from_several_provinces_and_about_a_fifth_new_energy(seeded: Database) -> None:
    plates = [v.plate for v in _all(seeded, Vehicle)]

    assert len(set(plates)) == len(plates)
    for plate in plates:
        assert REGULAR_PLATE.match(plate) or NEW_ENERGY_PLATE.match(plate), plate
    new_energy = [p for p in plates if len(p) == 8]
    assert all(NEW_ENERGY_PLATE.match(p) for p in new_energy)
    assert 0.1 <= len(new_energy) / len(plates) <= 0.3
    assert len({p[0] for p in plates}) >= 5
    assert Counter(p[:2] for p in plates).most_common(1)[0][0] == "粤A"


def test_demo_vins_are_unique_17_characters_with_a_valid_check_digit(seeded: Database) -> None:
    vins = [v.vin for v in _all(seeded, Vehicle)]

    assert len(set(vins)) == len(vins)
    for vin in vins:
        assert VIN.match(vin), vin
        assert vin[8] == vin_check_digit(vin), vin


def test_vin_check_digit_matches_a_known_vin() -> None:
    # the worked example of the North American / ISO 3779 check digit
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert vin_check_digit("11111111111111111") == "1"


def test_demo_deliveries_spread_over_three_years_and_history_is_consistent(seeded: Database) -> None:
    vehicles = _all(seeded, Vehicle)
    records = _all(seeded, ServiceRecord)

    deliveries = sorted(v.delivery_date for v in vehicles)
    assert deliveries[0] >= date(TODAY.year - 3, TODAY.month, TODAY.day)
    assert (deliveries[-1] - deliveries[0]).days > 2 * 365
    years = Counter((TODAY - d).days // 365 for d in deliveries)
    assert {0, 1, 2} <= set(years)  # cars from each of the last three years

    by_vehicle: dict[int, list[ServiceRecord]] = {}
    for record in records:
        by_vehicle.setdefault(record.vehicle_id, []).append(record)
    for vehicle in vehicles:
        history = sorted(by_vehicle.get(vehicle.id, []), key=lambda r: r.opened_on)
        assert 1 <= len(history) <= 4, vehicle.plate
        assert vehicle.delivery_date < vehicle.last_service_date < TODAY
        assert vehicle.last_service_mileage <= vehicle.mileage
        assert vehicle.mileage / (TODAY - vehicle.delivery_date).days < 80  # km a day
        assert any(
            r.opened_on == vehicle.last_service_date and r.mileage == vehicle.last_service_mileage for r in history
        )
        mileages = [r.mileage or 0 for r in history]
        assert mileages == sorted(mileages)
        assert all(vehicle.delivery_date < r.opened_on < TODAY for r in history)
        assert vehicle.insurance_due >= TODAY and vehicle.inspection_due >= TODAY
        assert vehicle.warranty_until > vehicle.delivery_date
        assert vehicle.model
    assert len({r.order_no for r in records}) == len(records)
    assert {r.service_type for r in records} >= {"first_service", "minor_service", "major_service"}
    assert all(r.amount_cents >= 0 for r in records)


def test_demo_datetimes_are_timezone_aware(seeded: Database) -> None:
    moments: list[datetime] = []
    moments += [c.created_at for c in _all(seeded, Customer)]
    moments += [r.closed_at for r in _all(seeded, ServiceRecord)]
    moments += [i.created_at for i in _all(seeded, ChannelIdentity)]
    moments += [d.created_at for d in _all(seeded, Dealer)]

    assert moments
    assert all(m is not None and m.utcoffset() == timedelta(0) for m in moments)


def test_about_seventy_percent_of_owners_follow_on_wechat(seeded: Database) -> None:
    openids = [i.address for i in _all(seeded, ChannelIdentity) if i.channel == Channel.wechat]

    assert len(openids) == 35
    assert len(set(openids)) == 35
    assert all(OPENID.match(o) for o in openids)


def test_demo_dealer_config_is_complete(seeded: Database) -> None:
    (dealer,) = _all(seeded, Dealer)
    config = DealerConfig.model_validate(dealer.config)

    assert dealer.slug == "demo" and dealer.timezone == "Asia/Shanghai" and dealer.language == "zh"
    assert dealer.latitude and dealer.longitude and dealer.phone and "广州" in dealer.address
    assert config.bays == 6 and config.pickup_offered and config.rescue_hotline
    assert config.rescue_radius_km == 50
    assert config.sms_signature.startswith("【") and config.sms_signature.endswith("】")
    assert sorted(config.hours) == list(range(7))
    minutes = {s.code: s.minutes for s in config.services}
    assert minutes == {
        "minor_service": 60, "major_service": 120, "first_service": 60, "repair": 120,
        "bodywork": 240, "alignment": 60, "inspection": 90, "detailing": 60,
    }
    topics = {"hours", "address", "phone", "prices", "maintenance_interval", "warranty",
              "first_service", "pickup", "inspection", "insurance"}
    assert {f.topic for f in config.faq} == topics
    assert all(config.faq_answer(t, "zh") and config.faq_answer(t, "en") for t in topics)
    assert config.holidays
    assert config.staff_available(datetime.fromisoformat("2026-03-16T19:30:00+08:00"), dealer.timezone)


def test_the_demo_store_has_a_wechat_account_and_a_twilio_account_on_the_local_fake(seeded: Database) -> None:
    accounts = {a.channel: a for a in _all(seeded, ChannelAccount)}

    assert set(accounts) == {Channel.wechat, Channel.sms}
    assert all(a.enabled for a in accounts.values())
    assert accounts[Channel.wechat].config == DEMO_WECHAT
    twilio = load_account(seeded, slug="demo")  # read as the SMS sender reads it
    assert (twilio.account_sid, twilio.auth_token) == (FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN)  # the fake's, not a secret
    assert twilio.api_base == f"http://127.0.0.1:{DEMO_FAKE_TWILIO_PORT}"  # never api.twilio.com
    assert twilio.from_number and phonenumbers.is_valid_number(phonenumbers.parse(twilio.from_number))
    assert twilio.messaging_service_sid is None and twilio.public_url is None
    assert twilio.signature == "【穗安汽车】"


def test_demo_staff_log_in_with_the_documented_passwords(seeded: Database) -> None:
    staff = {s.username: s for s in _all(seeded, Staff)}

    assert {u: s.role for u, s in staff.items()} == {
        "agent": StaffRole.agent, "manager": StaffRole.manager, "admin": StaffRole.admin
    }
    for username, member in staff.items():
        assert verify_password(member.password_hash, f"demo-{username}")
        assert not verify_password(member.password_hash, "wrong")
        assert re.fullmatch(r"[\u4e00-\u9fff]{2,3}", member.display_name)


def test_loading_the_demo_again_returns_the_same_dealer_and_adds_nothing(seeded: Database) -> None:
    with seeded.transaction() as session:
        first = session.scalars(select(Dealer)).one()
        counts = [session.scalar(select(func.count()).select_from(m)) for m in (Customer, Vehicle, ServiceRecord)]
        assert demo_loaded(session)
    with seeded.transaction() as session:
        again = load_demo(session, today=TODAY)
    with seeded.transaction() as session:
        assert again.id == first.id
        assert [session.scalar(select(func.count()).select_from(m)) for m in (Customer, Vehicle, ServiceRecord)] == counts


def test_demo_loaded_is_false_on_an_empty_database(db: Database) -> None:
    with db.transaction() as session:
        assert not demo_loaded(session)


def test_the_demo_is_the_same_every_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    snapshots = []
    for name in ("one", "two"):
        database = Database(f"sqlite:///{tmp_path / name}.db")
        Base.metadata.create_all(database.engine)
        with database.transaction() as session:
            load_demo(session, today=TODAY)
        with database.transaction() as session:
            snapshots.append(
                (
                    session.execute(select(Customer.name, Customer.phone, Customer.tier).order_by(Customer.id)).all(),
                    session.execute(select(Vehicle.plate, Vehicle.vin, Vehicle.mileage).order_by(Vehicle.id)).all(),
                    session.execute(select(ServiceRecord.order_no, ServiceRecord.amount_cents).order_by(ServiceRecord.id)).all(),
                )
            )
        database.dispose()
    assert snapshots[0] == snapshots[1]
