"""An urgent case's ticket, its staff alert and the owner's reply commit together or not at all."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.models import Message, MessageStatus, Outbox, Ticket
from bot.pipeline import Pipeline
from tests.conversations.test_booking_race import MONDAY_10, say, seed

URGENT = ["车在高速上爆胎了 怎么办", "刚保养完刹车就失灵了 差点出事 你们怎么修的"]


def counts(db: Database) -> tuple[int, int, int]:
    with db.sessions() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.urgent.is_(True)))
        alerts = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "alert"))
        replies = session.scalar(select(func.count()).select_from(Message).where(Message.sender == "bot"))
    return tickets or 0, alerts or 0, replies or 0


@pytest.mark.parametrize("text", URGENT)
def test_an_urgent_case_writes_ticket_alert_and_reply(db: Database, nlu, text: str) -> None:  # type: ignore[no-untyped-def]
    dealer_id, (owner,) = seed(db, 1)

    answer = say(Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10), dealer_id, owner, text, 1)

    tickets, alerts, replies = counts(db)
    assert answer and (tickets, alerts) == (1, 1) and replies >= 1


@pytest.mark.parametrize("text", URGENT)
def test_when_the_reply_cannot_be_written_neither_ticket_nor_alert_is(db: Database, nlu, text: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dealer_id, (owner,) = seed(db, 1)
    pipeline = Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full while writing the reply")

    monkeypatch.setattr(pipeline, "_record_turn" if db.is_postgres else "_add_replies", broken)
    if not db.is_postgres:
        # the failed-turn path writes its apology through _add_replies too: let that one through
        original = Pipeline._add_replies
        calls = {"n": 0}

        def first_fails(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("disk full while writing the reply")
            return original(pipeline, *args, **kwargs)

        monkeypatch.setattr(pipeline, "_add_replies", first_fails)

    answer = say(pipeline, dealer_id, owner, text, 1)

    tickets, alerts, _ = counts(db)
    assert (tickets, alerts) == (0, 0), "the case was rolled back with the reply"
    assert "工作人员" in answer  # the owner is told politely; the message is kept for staff
    with db.sessions() as session:
        assert session.scalars(select(Message.status).where(Message.direction == "in")).one() == MessageStatus.dead
