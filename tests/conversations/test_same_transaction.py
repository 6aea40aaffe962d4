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


@pytest.mark.parametrize(("answer", "settled"), [("已解决 谢谢", True), ("还没有 车还是响", False)])
def test_a_resolved_complaint_tells_the_owner_the_result_and_asks_if_it_is_settled(  # type: ignore[no-untyped-def]
    db: Database, nlu, answer: str, settled: bool
) -> None:
    from bot import tickets
    from bot.models import Conversation, ConversationStatus, TicketStatus

    dealer_id, (owner,) = seed(db, 1)
    pipeline = Pipeline(db=db, nlu=nlu, clock=lambda: MONDAY_10)
    say(pipeline, dealer_id, owner, "上周保养完车门被划了一道 你们要负责", 1)
    with db.transaction() as session:
        ticket = session.scalars(select(Ticket)).one()
        tickets.resolve(session, ticket, result="已为您免费补漆，明天可到店取车。", actor="staff:1", now=MONDAY_10)
    with db.sessions() as session:
        sent = session.scalars(select(Message).where(Message.sender == "staff:1")).one()
    assert "免费补漆" in sent.text and "解决" in sent.text

    reply = say(pipeline, dealer_id, owner, answer, 2)

    with db.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        conversation = session.scalars(select(Conversation)).one()
    if settled:
        assert ticket.status == TicketStatus.resolved and conversation.status == ConversationStatus.bot
    else:
        assert ticket.status == TicketStatus.new and ticket.details.get("reopened_at")
        assert conversation.status == ConversationStatus.waiting_staff
    assert reply
