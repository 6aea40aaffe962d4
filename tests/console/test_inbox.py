"""The inbox: urgent roadside first, then complaints, then the rest, each with its SLA clock; only one dealer's."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.db import Database
from bot.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    Direction,
    Message,
    MessageStatus,
)
from tests.console.conftest import NOW, World

pytestmark = pytest.mark.db


def _waiting(db: Database, dealer_id: int, name: str, *, reason: str, minutes_ago: int, urgent: bool = False,
             text: str = "你好") -> int:
    with db.transaction() as session:
        customer = Customer(dealer_id=dealer_id, name=name, phone=f"+86139{abs(hash(name)) % 10**8:08d}")
        session.add(customer)
        session.flush()
        since = NOW - timedelta(minutes=minutes_ago)
        conversation = Conversation(dealer_id=dealer_id, customer_id=customer.id, status=ConversationStatus.waiting_staff,
                                    handoff_reason=reason, handoff_urgent=urgent, handed_off_at=since,
                                    last_channel=Channel.simulator, last_message_at=since)
        session.add(conversation)
        session.flush()
        session.add(Message(dealer_id=dealer_id, conversation_id=conversation.id, channel=Channel.simulator,
                            direction=Direction.inbound, status=MessageStatus.handled, address=f"sim-{customer.id}",
                            text=text, created_at=since))
        return conversation.id


def _order(html: str) -> list[int]:
    waiting = html.split('id="waiting-count"', 1)[1].split("inbox_taken", 1)[0]
    return [int(n) for n in re.findall(r'<tr class="[^"]*" data-conversation="(\d+)"', waiting)]


def test_roadside_waits_first_then_complaints_then_the_rest_each_oldest_first(agent, world: World, db, clock) -> None:
    other = world.a.ids["conversation_id"]  # asked for a person at NOW
    old_question = _waiting(db, world.a.dealer_id, "李女士", reason="misunderstood", minutes_ago=50)
    complaint = _waiting(db, world.a.dealer_id, "赵先生", reason="complaint", minutes_ago=5)
    roadside = _waiting(db, world.a.dealer_id, "钱先生", reason="roadside", minutes_ago=1, urgent=True)
    safety = _waiting(db, world.a.dealer_id, "孙女士", reason="complaint", minutes_ago=2, urgent=True)

    page = agent.get("/console/")

    assert page.status_code == 200
    assert _order(page.text) == [safety, roadside, complaint, old_question, other]
    assert "道路救援" in page.text and "投诉" in page.text


def test_each_waiting_conversation_shows_its_sla_countdown_and_a_breach_stands_out(agent, world: World, db, clock) -> None:
    # the test dealer's SLA: urgent 30 min, complaint 240, anything else 60
    _waiting(db, world.a.dealer_id, "钱先生", reason="roadside", minutes_ago=10, urgent=True)
    late = _waiting(db, world.a.dealer_id, "李女士", reason="misunderstood", minutes_ago=75)

    page = agent.get("/console/").text

    assert ">20:00<" in page  # 30 min urgent SLA, 10 min gone
    row = re.search(rf'<tr class="([^"]*)" data-conversation="{late}">(.*?)</tr>', page, re.DOTALL)
    assert row and row.group(1) == "overdue"
    assert "-15:00" in row.group(2) and "已超时" in row.group(2)


def test_the_inbox_shows_only_the_signed_in_dealers_conversations(agent, world: World, db, clock) -> None:
    _waiting(db, world.b.dealer_id, "别家车主", reason="roadside", minutes_ago=1, urgent=True, text="B店的秘密")

    page = agent.get("/console/").text

    assert "别家车主" not in page and "B店的秘密" not in page
    assert f'data-conversation="{world.a.ids["conversation_id"]}"' in page
    assert f'data-conversation="{world.b.ids["conversation_id"]}"' not in page


def test_taken_conversations_are_listed_apart_with_who_has_them(agent, world: World, db, clock) -> None:
    with db.transaction() as session:
        conversation = session.get_one(Conversation, world.a.ids["conversation_id"])
        conversation.status = ConversationStatus.staff
        conversation.handed_off_to = world.a.staff["manager"]

    page = agent.get("/console/").text

    assert _order(page) == []
    assert "manager-test" in page.split("处理中", 1)[1]


def test_the_rows_fragment_is_what_live_updates_swap_in(agent, world: World, clock) -> None:
    fragment = agent.get("/console/inbox/rows")

    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="waiting-count"' in fragment.text


def test_the_navigation_marks_the_page_you_are_on(agent, world: World, clock) -> None:
    assert '<a href="/console/" aria-current="page">收件箱</a>' in agent.get("/console/").text
    tickets = agent.get("/console/tickets").text
    assert '<a href="/console/tickets" aria-current="page">' in tickets and '<a href="/console/" aria-current' not in tickets
