"""The planner's SQL only pre-filters: it never drops a reminder the rule functions would plan."""
from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import Customer, Outbox, Vehicle
from scheduler import rules
from scheduler.planner import plan
from scheduler.rules import CustomerFacts, Today, VehicleFacts
from tests.factories import make_dealer

pytestmark = pytest.mark.db

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("day", [date(2026, 6, 1), date(2027, 2, 28), date(2028, 2, 28), date(2026, 12, 31)])
def test_the_planner_writes_exactly_what_the_rules_say_for_many_random_cars(db: Database, day: date) -> None:
    rng = random.Random(day.toordinal())
    now = datetime(day.year, day.month, day.day, 7, 0, tzinfo=SHANGHAI).astimezone(UTC)

    def near(days: int) -> date:
        return day + timedelta(days=rng.randint(-days, days))

    facts: list[tuple[VehicleFacts, CustomerFacts]] = []
    with db.transaction() as session:
        dealer = make_dealer(session, tier_cadence_days={})
        config = dealer.config
        for n in range(400):
            delivered = near(700)
            serviced = None if rng.random() < 0.3 else min(day, delivered + timedelta(days=rng.randint(1, 400)))
            driven = max(1, (day - delivered).days) * rng.randint(5, 150)
            customer = Customer(dealer_id=dealer.id, name="", phone=f"+8613900{n:06d}", tier="C",
                                birthday=None if rng.random() < 0.2 else date(1990, 1, 1) + timedelta(days=rng.randint(0, 3000)))
            session.add(customer)
            session.flush()
            car = Vehicle(
                dealer_id=dealer.id, customer_id=customer.id, plate=f"粤C{n:05d}", delivery_date=delivered,
                last_service_date=serviced, last_service_mileage=rng.choice([None, 0, driven // 2, driven]) if serviced else None,
                mileage=rng.choice([None, driven]), insurance_due=near(40), inspection_due=near(40), warranty_until=near(40),
            )
            session.add(car)
            session.flush()
            facts.append((
                VehicleFacts(car.id, car.delivery_date, car.last_service_date, car.last_service_mileage, car.mileage,
                             car.insurance_due, car.inspection_due, car.warranty_until),
                CustomerFacts(customer.id, customer.birthday, "C"),
            ))

    plan(db, now)

    from bot.dealer_config import DealerConfig

    today = Today.of(now, "Asia/Shanghai", DealerConfig.model_validate(config))
    expected = {due.dedupe_key for car, _ in facts for function in rules.VEHICLE_RULES.values() for due in function(car, today)}
    expected |= {due.dedupe_key for _, owner in facts for due in rules.birthday(owner, today)}
    with db.sessions() as session:
        written = set(session.scalars(select(Outbox.dedupe_key)))
    assert written == expected
    assert len(expected) > 20  # the draw makes plenty due
