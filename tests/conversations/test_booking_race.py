"""Twenty owners confirm the last free bay at the same moment; a restart in the middle of a booking."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.demo import demo_config
from bot.messages import InboundMessage
from bot.models import Appointment, Channel, Conversation, Customer, Dealer, Vehicle
from bot.pipeline import Pipeline

MONDAY_10 = datetime.fromisoformat("2026-11-23T10:00:00+08:00")


def seed(db: Database, owners: int, **config: object) -> tuple[int, list[int]]:
    settings = demo_config(date(2026, 11, 23)).model_dump(mode="json") | config
    with db.transaction() as session:
        dealer = Dealer(slug="demo", name="广州穗安汽车4S店", phone="020-38886666", config=settings)
        session.add(dealer)
        session.flush()
        ids = []
        for number in range(owners):
            customer = Customer(dealer_id=dealer.id, name=f"车主{number}", language="zh")
            session.add(customer)
            session.flush()
            session.add(Vehicle(dealer_id=dealer.id, customer_id=customer.id, plate=f"粤B{10000 + number}"))
            ids.append(customer.id)
        return dealer.id, ids


def say(pipeline: Pipeline, dealer_id: int, customer_id: int, text: str, number: int) -> str:
    replies = pipeline.handle_inbound(
        InboundMessage(
            dealer_id=dealer_id,
            channel=Channel.simulator,
            address=f"sim:{customer_id}",
            customer_id=customer_id,
            text=text,
            channel_message_id=f"{customer_id}:{number}",
        )
    )
    return "\n".join(reply.as_plain_text() for reply in replies)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twenty_owners_confirming_the_last_free_slot_at_once_make_one_appointment(db: Database, nlu) -> None:  # type: ignore[no-untyped-def]
    dealer_id, owners = seed(db, 20, bays=1, pickup_offered=False)
    pipeline = Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10)
    for owner in owners:  # each owner gets as far as the summary for tomorrow 09:00
        summary = say(pipeline, dealer_id, owner, "明天上午9点做个小保养", 1)
        assert "确认" in summary, summary
    barrier = threading.Barrier(len(owners))

    def confirm(owner: int) -> str:
        barrier.wait()
        return say(pipeline, dealer_id, owner, "确认", 2)

    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        answers = list(pool.map(confirm, owners))

    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    booked = [answer for answer in answers if "预约号" in answer or "B0" in answer]
    taken = [answer for answer in answers if "刚刚被其他客户约走了" in answer]
    assert len(booked) == 1 and len(taken) == 19, answers
    assert all("1." in answer for answer in taken), "the others are offered the next free slots"


def test_a_restart_in_the_middle_of_a_booking_loses_nothing(db: Database, nlu) -> None:  # type: ignore[no-untyped-def]
    dealer_id, (owner,) = seed(db, 1, pickup_offered=False)
    before = Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10)
    assert "确认" in say(before, dealer_id, owner, "明天上午9点做个小保养", 1)

    after_restart = Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10 + timedelta(minutes=5))  # a new process
    answer = say(after_restart, dealer_id, owner, "确认", 2)

    with db.sessions() as session:
        appointment = session.scalars(select(Appointment)).one()
        state = session.scalars(select(Conversation.state)).one()
    assert appointment.reference in answer and appointment.service_type == "minor_service"
    assert appointment.starts_at == datetime.fromisoformat("2026-11-24T09:00:00+08:00")
    assert state.get("flow") is None
