"""Small builders for test rows; each adds and flushes, the test's transaction commits."""
from __future__ import annotations

from datetime import time

from sqlalchemy.orm import Session

from bot.dealer_config import DayHours, DealerConfig, FaqEntry, Service
from bot.models import Customer, Dealer, Vehicle

ALL_WEEK = {day: DayHours(open=time(0, 0), close=time(23, 59)) for day in range(7)}


def make_dealer(session: Session, *, slug: str = "test", staff_always: bool = True, **config: object) -> Dealer:
    """Adds a dealer whose staff are at work around the clock unless told otherwise."""
    cfg = DealerConfig(
        hours=ALL_WEEK if staff_always else {d: DayHours(open=time(8, 30), close=time(18, 0)) for d in range(5)},
        services=[Service(code="minor_service", name_zh="小保养", name_en="minor service", minutes=60)],
        faq=[FaqEntry(topic="hours", answer_zh="我们每天8:30-18:00营业。", answer_en="We are open 8:30-18:00 daily.")],
        rescue_hotline="400-800-1234",
        **config,  # type: ignore[arg-type]
    )
    dealer = Dealer(slug=slug, name="测试丰田4S店", phone="020-88886666", config=cfg.model_dump(mode="json"))
    session.add(dealer)
    session.flush()
    return dealer


def make_customer(
    session: Session, dealer: Dealer, *, name: str = "王先生", phone: str = "+8613800138000", lang: str = "zh", plate: str = "粤B12345"
) -> Customer:
    customer = Customer(dealer_id=dealer.id, name=name, phone=phone, language=lang)
    session.add(customer)
    session.flush()
    session.add(Vehicle(dealer_id=dealer.id, customer_id=customer.id, plate=plate, model="凯美瑞"))
    session.flush()
    return customer
