"""Whole conversations, written as transcripts, run through the real pipeline on both databases.

Each file in this directory holds transcripts:

    - name: what the conversation shows
      now: "2026-11-23T10:00:00+08:00"     # the clock; the dealer is the demo store (Asia/Shanghai)
      owner: one_car                       # one_car | two_cars | no_car | english
      appointments: [...]                  # optional: booked before, see _seed_appointments
      steps:
        - owner: 明天下午三点做个小保养     # what the owner sends (or location: [lat, lon, label])
          bot: [确认, 小保养]               # every piece must appear in the bot's replies
          not: [抱歉]                       # none of these may
          state: {flow: booking}            # keys of the state after the step ("slots.paused.flow" digs in)
          status: waiting_staff             # the conversation status after the step
          count: {appointment: 1}           # rows of these tables (ticket, appointment, alert...)

so a dealer's service advisor can read them as what the bot does.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from bot.db import Database
from bot.demo import LATITUDE, LONGITUDE, demo_config
from bot.messages import InboundMessage
from bot.models import (
    Appointment,
    Channel,
    Conversation,
    Customer,
    Dealer,
    Outbox,
    Ticket,
    Vehicle,
)
from bot.pipeline import Pipeline

HERE = Path(__file__).parent
TRANSCRIPTS = [
    pytest.param(transcript, id=f"{path.stem}: {transcript['name']}")
    for path in sorted(HERE.glob("*.yml"))
    for transcript in yaml.safe_load(path.read_text(encoding="utf-8"))
]
COUNTS = {
    "appointment": lambda: select(func.count()).select_from(Appointment).where(Appointment.status.in_(("booked", "confirmed"))),
    "cancelled": lambda: select(func.count()).select_from(Appointment).where(Appointment.status == "cancelled"),
    "ticket": lambda: select(func.count()).select_from(Ticket),
    "urgent_ticket": lambda: select(func.count()).select_from(Ticket).where(Ticket.urgent.is_(True)),
    "alert": lambda: select(func.count()).select_from(Outbox).where(Outbox.kind == "alert"),
    "vehicle": lambda: select(func.count()).select_from(Vehicle),
}
OWNERS = {
    "one_car": ("王先生", "zh", ["粤B12345"]),
    "two_cars": ("李女士", "zh", ["粤B12345", "粤A8K821"]),
    "no_car": ("赵先生", "zh", []),
    "english": ("Tom", "en", ["粤B12345"]),
}


def test_there_are_at_least_forty_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 40


@pytest.mark.parametrize("transcript", TRANSCRIPTS)
def test_transcript(db: Database, nlu, transcript: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    now = datetime.fromisoformat(transcript.get("now", "2026-11-23T10:00:00+08:00"))
    clock = _Clock(now)
    owner = _seed(db, transcript, now.date())
    pipeline = Pipeline(db=db, nlu=nlu, clock=clock)

    for number, step in enumerate(transcript["steps"], 1):
        where = f"step {number}: {step.get('owner') or step.get('location')!r}"
        replies = pipeline.handle_inbound(_message(owner, step, number, transcript["name"]))
        said = "\n".join(reply.as_plain_text() for reply in replies)
        for piece in step.get("bot", []):
            assert str(piece) in said, f"{where}: expected {piece!r} in the bot's reply:\n{said}"
        for piece in step.get("not", []):
            assert str(piece) not in said, f"{where}: did not expect {piece!r} in:\n{said}"
        if step.get("silent"):
            assert replies == [], f"{where}: expected no bot reply, got:\n{said}"
        _check_after(db, owner, step, where)
        clock.advance(step.get("wait_minutes", 1))


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, minutes: float) -> None:
        self.moment += timedelta(minutes=minutes)


def _seed(db: Database, transcript: dict[str, Any], today: date) -> tuple[int, int]:
    name, lang, plates = OWNERS[transcript.get("owner", "one_car")]
    config = demo_config(today).model_dump(mode="json")
    config.update(transcript.get("config", {}))
    with db.transaction() as session:
        dealer = Dealer(
            slug="demo", name="广州穗安汽车4S店", phone="020-38886666", latitude=LATITUDE, longitude=LONGITUDE, config=config
        )
        session.add(dealer)
        session.flush()
        customer = Customer(dealer_id=dealer.id, name=name, phone="+8613800138000", language=lang)
        session.add(customer)
        session.flush()
        for plate in plates:
            session.add(
                Vehicle(
                    dealer_id=dealer.id,
                    customer_id=customer.id,
                    plate=plate,
                    model="凯美瑞",
                    last_service_date=date(2026, 6, 1),
                    last_service_mileage=20_000,
                )
            )
        for number, row in enumerate(transcript.get("appointments", []), 1):
            starts_at = datetime.fromisoformat(row["starts_at"])
            session.add(
                Appointment(
                    dealer_id=dealer.id,
                    reference=row.get("reference", f"B9{number:05d}"),
                    customer_id=customer.id if row.get("mine", True) else _other_owner(session, dealer.id),
                    service_type=row.get("service", "minor_service"),
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(minutes=row.get("minutes", 60)),
                    bay=row.get("bay", 1),
                    status="booked",
                )
            )
        return dealer.id, customer.id


def _other_owner(session, dealer_id: int) -> int:  # type: ignore[no-untyped-def]
    other = Customer(dealer_id=dealer_id, name="别的车主", language="zh")
    session.add(other)
    session.flush()
    return other.id


def _message(owner: tuple[int, int], step: dict[str, Any], number: int, name: str) -> InboundMessage:
    dealer_id, customer_id = owner
    common = {
        "dealer_id": dealer_id,
        "channel": Channel.simulator,
        "address": f"sim:{customer_id}",
        "customer_id": customer_id,
        "channel_message_id": f"{name}:{number}",
    }
    if "location" in step:
        latitude, longitude, label = step["location"]
        return InboundMessage(
            **common, text=label, kind="location", payload={"latitude": latitude, "longitude": longitude, "label": label}
        )
    return InboundMessage(**common, text=str(step["owner"]))


def _check_after(db: Database, owner: tuple[int, int], step: dict[str, Any], where: str) -> None:
    with db.sessions() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.customer_id == owner[1])).one()
        for key, expected in (step.get("state") or {}).items():
            actual = _dig(conversation.state or {}, key)
            assert actual == expected, f"{where}: state {key} is {actual!r}, expected {expected!r}"
        if "status" in step:
            assert conversation.status.value == step["status"], f"{where}: status is {conversation.status.value}"
        for table, expected in (step.get("count") or {}).items():
            actual = session.scalar(COUNTS[table]())
            assert actual == expected, f"{where}: {actual} {table} rows, expected {expected}"


def _dig(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree
