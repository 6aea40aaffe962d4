"""The console's ticket pages: staff see their dealer's complaints and roadside cases, move them
new → acknowledged → in progress → resolved → closed, and the owner hears the result. Every change is
audited, another dealer's ticket is 404, anonymous and CSRF-less requests change nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.db import Database
from bot.models import (
    AuditLog,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    Outbox,
    Staff,
    Ticket,
    TicketKind,
    TicketStatus,
)
from tests.console.conftest import NOW, Console, World

pytestmark = pytest.mark.db

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(autouse=True)
def _console_at_now(clock) -> None:  # type: ignore[no-untyped-def]
    """The console's clock (conftest's) stands at the world's NOW before anyone signs in, so sessions stay fresh."""


def _ticket(db: Database, ticket_id: int) -> Ticket:
    with db.sessions() as session:
        return session.get_one(Ticket, ticket_id)


def _add_ticket(db: Database, records, **fields) -> int:  # type: ignore[no-untyped-def]
    """Another ticket for the dealer's owner; fields override the defaults."""
    values = {"dealer_id": records.dealer_id, "reference": f"R-{records.slug}-2", "kind": TicketKind.roadside,
              "customer_id": records.ids["customer_id"], "category": "flat_tyre", "summary": "高速爆胎",
              "sla_due_at": NOW + timedelta(minutes=30), "created_at": NOW} | fields
    with db.transaction() as session:
        ticket = Ticket(**values)
        session.add(ticket)
        session.flush()
        return ticket.id


def _audit(db: Database, action: str) -> list[AuditLog]:
    with db.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _set_status(db: Database, ticket_id: int, status: TicketStatus) -> None:
    with db.transaction() as session:
        session.get_one(Ticket, ticket_id).status = status


def _row_of(html: str, reference: str) -> str:
    """The list's <tr> holding this reference."""
    start = html.rindex("<tr", 0, html.index(f">{reference}<"))
    return html[start:html.index("</tr>", start)]


# -- the list --------------------------------------------------------------------------------------


def test_the_list_shows_the_dealers_tickets_and_not_another_dealers(agent: Console, world: World) -> None:
    page = agent.get("/console/tickets")
    assert page.status_code == 200
    assert "C-test-1" in page.text and "等了两个小时" in page.text
    assert f'href="/console/owners/{world.a.ids["customer_id"]}"' in page.text
    assert "C-other-1" not in page.text


def test_filters_narrow_the_list(agent: Console, world: World, db: Database) -> None:
    _add_ticket(db, world.a)
    assert "R-test-2" not in agent.get("/console/tickets?kind=complaint").text
    roadside = agent.get("/console/tickets?kind=roadside").text
    assert "R-test-2" in roadside and "C-test-1" not in roadside
    by_category = agent.get("/console/tickets?category=service").text
    assert "C-test-1" in by_category and "R-test-2" not in by_category

    agent.post(f"/console/tickets/{world.a.ids['ticket_id']}/assign", {"assignee_id": "me"})
    mine = agent.get("/console/tickets?assignee=mine").text
    assert "C-test-1" in mine and "R-test-2" not in mine
    assert "C-test-1" not in agent.get("/console/tickets?assignee=none").text


def test_closed_tickets_are_hidden_unless_asked_for(agent: Console, world: World, db: Database) -> None:
    _set_status(db, world.a.ids["ticket_id"], TicketStatus.closed)
    assert "C-test-1" not in agent.get("/console/tickets").text
    assert "C-test-1" in agent.get("/console/tickets?status=closed").text
    assert "C-test-1" in agent.get("/console/tickets?status=all").text


def test_urgent_tickets_come_first_then_the_nearest_sla(agent: Console, world: World, db: Database) -> None:
    _add_ticket(db, world.a, reference="R-test-soon", sla_due_at=NOW + timedelta(minutes=5))
    _add_ticket(db, world.a, reference="R-test-urgent", urgent=True, sla_due_at=NOW + timedelta(hours=9))
    html = agent.get("/console/tickets").text
    assert html.index("R-test-urgent") < html.index("R-test-soon") < html.index("C-test-1")


def test_bad_filter_values_are_ignored_with_a_message(agent: Console) -> None:
    page = agent.get("/console/tickets?kind=bogus&status=nope&category=x&assignee=someone&overdue=maybe")
    assert page.status_code == 200
    assert "C-test-1" in page.text
    assert "kind, status, category, assignee, overdue" in page.text
    assert agent.get("/console/tickets?kind=" + "x" * 500).status_code == 422


def test_a_breached_sla_stands_out(agent: Console, world: World, db: Database) -> None:
    _add_ticket(db, world.a, reference="R-test-late", sla_due_at=NOW - timedelta(minutes=10))
    html = agent.get("/console/tickets").text
    late, on_time = _row_of(html, "R-test-late"), _row_of(html, "C-test-1")
    assert 'class="ticket overdue"' in late and "超时" in late and "-10:00" in late
    assert "overdue" not in on_time and "3:59:59" not in on_time and "4:00:00" in on_time

    only_late = agent.get("/console/tickets?overdue=1").text
    assert "R-test-late" in only_late and "C-test-1" not in only_late
    agent.get("/console/lang/en")
    english = agent.get("/console/tickets").text
    assert "Overdue" in _row_of(english, "R-test-late")


def test_a_resolved_ticket_past_its_sla_is_not_overdue(agent: Console, world: World, db: Database) -> None:
    _add_ticket(db, world.a, reference="R-test-done", sla_due_at=NOW - timedelta(hours=1), status=TicketStatus.resolved)
    assert "overdue" not in _row_of(agent.get("/console/tickets").text, "R-test-done")


# -- one ticket and its moves -----------------------------------------------------------------------


def test_the_ticket_page_shows_facts_details_and_the_next_step(agent: Console, world: World, db: Database) -> None:
    with db.transaction() as session:
        session.get_one(Ticket, world.a.ids["ticket_id"]).details = {"place": "广州 <b>天河</b>"}
    page = agent.get(f"/console/tickets/{world.a.ids['ticket_id']}")
    assert page.status_code == 200
    assert "C-test-1" in page.text and "等了两个小时" in page.text
    assert "广州 &lt;b&gt;天河&lt;/b&gt;" in page.text
    assert f'href="/console/owners/{world.a.ids["customer_id"]}"' in page.text
    assert 'name="to" value="acknowledged"' in page.text
    assert 'action="/console/tickets/' in page.text and "/resolve" not in page.text  # not before in progress


def test_moves_go_forward_in_order_and_are_audited(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    for to in ("acknowledged", "in_progress"):
        response = agent.post(f"/console/tickets/{ticket_id}/status", {"to": to}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/console/tickets/{ticket_id}?done=moved"
    ticket = _ticket(db, ticket_id)
    assert ticket.status == TicketStatus.in_progress
    assert ticket.assignee_id == world.a.staff["agent"]  # acknowledging an unassigned ticket takes it

    rows = _audit(db, "ticket.status")
    assert [(row.data["from"], row.data["to"]) for row in rows] == [("new", "acknowledged"), ("acknowledged", "in_progress")]
    assert all(row.staff_id == world.a.staff["agent"] and row.customer_id == world.a.ids["customer_id"]
               and row.target == "C-test-1" and row.created_at == NOW for row in rows)
    history = agent.get(f"/console/tickets/{ticket_id}?done=moved").text
    assert "状态已更新" in history
    assert "已受理" in history and "处理中" in history and "agent-test" in history


def test_an_illegal_move_is_409_and_changes_nothing(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    skip = agent.post(f"/console/tickets/{ticket_id}/status", {"to": "in_progress"})
    assert skip.status_code == 409
    assert "不允许" in skip.text
    assert agent.post(f"/console/tickets/{ticket_id}/close").status_code == 409
    assert agent.post(f"/console/tickets/{ticket_id}/status", {"to": "flying"}).status_code == 422
    assert _ticket(db, ticket_id).status == TicketStatus.new
    assert _audit(db, "ticket.status") == [] and _audit(db, "ticket.close") == []


def test_resolving_sends_the_owner_the_result(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    _set_status(db, ticket_id, TicketStatus.in_progress)
    response = agent.post(f"/console/tickets/{ticket_id}/resolve", {"result": "已为您安排免费保养一次"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].endswith("?done=resolved_sent")

    ticket = _ticket(db, ticket_id)
    assert ticket.status == TicketStatus.resolved and ticket.result == "已为您安排免费保养一次" and ticket.resolved_at == NOW
    with db.sessions() as session:
        outbox = session.scalars(select(Outbox).where(Outbox.kind == "ticket_result")).one()
        message = session.get_one(Message, outbox.message_id)
        conversation = session.get_one(Conversation, world.a.ids["conversation_id"])
    assert outbox.customer_id == world.a.ids["customer_id"] and "已为您安排免费保养一次" in outbox.body
    assert message.direction == Direction.outbound and message.sender == f"staff:{world.a.staff['agent']}"
    assert conversation.status == ConversationStatus.bot  # the bot asks the owner whether it is settled
    [row] = _audit(db, "ticket.resolve")
    assert row.customer_id == world.a.ids["customer_id"] and row.data["result"] == "已为您安排免费保养一次"


def test_a_roadside_result_reaches_the_owner_without_a_question_back(agent: Console, world: World, db: Database) -> None:
    ticket_id = _add_ticket(db, world.a, status=TicketStatus.in_progress, conversation_id=world.a.ids["conversation_id"])

    page = agent.post(f"/console/tickets/{ticket_id}/resolve", {"result": "拖车已将您的车送到本店维修"})

    assert page.status_code == 200 and "已发送给车主" in page.text
    with db.sessions() as session:
        [row] = session.scalars(select(Outbox).where(Outbox.kind == "ticket_result")).all()
    assert "救援" in row.body and "R-test-2" in row.body and "拖车已将您的车送到本店维修" in row.body
    assert "解决了吗" not in row.body


def test_a_result_with_no_conversation_to_send_it_to_is_recorded_and_staff_are_told(agent: Console, world: World,
                                                                                    db: Database) -> None:
    ticket_id = _add_ticket(db, world.a, status=TicketStatus.in_progress)
    page = agent.post(f"/console/tickets/{ticket_id}/resolve", {"result": "拖车已到达"})
    assert page.status_code == 200 and "未发送给车主" in page.text
    assert _ticket(db, ticket_id).result == "拖车已到达"
    with db.sessions() as session:
        assert session.scalars(select(Outbox).where(Outbox.kind == "ticket_result")).all() == []


def test_an_empty_result_is_refused(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    _set_status(db, ticket_id, TicketStatus.in_progress)
    for form in ({"result": "   "}, {}):
        page = agent.post(f"/console/tickets/{ticket_id}/resolve", form)
        assert page.status_code == 422
        assert "请填写处理结果" in page.text and 'name="result"' in page.text
    assert agent.post(f"/console/tickets/{ticket_id}/status", {"to": "resolved"}).status_code == 422
    assert _ticket(db, ticket_id).status == TicketStatus.in_progress
    with db.sessions() as session:
        assert session.scalars(select(Outbox).where(Outbox.kind == "ticket_result")).all() == []


def test_a_resolved_ticket_closes_or_reopens(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    _set_status(db, ticket_id, TicketStatus.resolved)
    assert agent.post(f"/console/tickets/{ticket_id}/status", {"to": "in_progress"}, follow_redirects=False).status_code == 303
    assert _ticket(db, ticket_id).status == TicketStatus.in_progress

    _set_status(db, ticket_id, TicketStatus.resolved)
    assert agent.post(f"/console/tickets/{ticket_id}/close", follow_redirects=False).status_code == 303
    assert _ticket(db, ticket_id).status == TicketStatus.closed
    [row] = _audit(db, "ticket.close")
    assert row.target == "C-test-1" and row.data == {"from": "resolved", "to": "closed"}
    # closed is final
    assert agent.post(f"/console/tickets/{ticket_id}/status", {"to": "in_progress"}).status_code == 409
    assert agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": "me"}).status_code == 409


def test_reopening_after_a_result_stops_asking_the_owner_whether_it_is_settled(agent: Console, world: World,
                                                                              db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    _set_status(db, ticket_id, TicketStatus.in_progress)
    agent.post(f"/console/tickets/{ticket_id}/resolve", {"result": "已更换零件"})
    with db.sessions() as session:
        assert session.get_one(Conversation, world.a.ids["conversation_id"]).state["flow"] == "complaint_followup"

    agent.post(f"/console/tickets/{ticket_id}/status", {"to": "in_progress"})

    assert _ticket(db, ticket_id).status == TicketStatus.in_progress and _ticket(db, ticket_id).resolved_at is None
    with db.sessions() as session:
        assert session.get_one(Conversation, world.a.ids["conversation_id"]).state == {}


def test_assign_to_a_colleague(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    page = agent.get(f"/console/tickets/{ticket_id}").text
    assert f'value="{world.a.staff["manager"]}"' in page and f'value="{world.b.staff["agent"]}"' not in page

    response = agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": world.a.staff["manager"]},
                          follow_redirects=False)
    assert response.status_code == 303
    assert _ticket(db, ticket_id).assignee_id == world.a.staff["manager"]
    [row] = _audit(db, "ticket.assign")
    assert row.staff_id == world.a.staff["agent"] and row.customer_id == world.a.ids["customer_id"]
    assert row.data["assignee_id"] == world.a.staff["manager"] and row.data["assignee_name"] == "manager-test"

    agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": ""})
    assert _ticket(db, ticket_id).assignee_id is None


def test_no_assigning_to_another_dealers_staff_or_a_deactivated_one(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    assert agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": world.b.staff["agent"]}).status_code == 404
    assert agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": "abc"}).status_code == 422
    with db.transaction() as session:
        session.get_one(Staff, world.a.staff["admin"]).active = False
    assert agent.post(f"/console/tickets/{ticket_id}/assign", {"assignee_id": world.a.staff["admin"]}).status_code == 422
    assert _ticket(db, ticket_id).assignee_id is None and _audit(db, "ticket.assign") == []


def test_category_and_department_can_be_set(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    response = agent.post(f"/console/tickets/{ticket_id}/classify", {"category": "product_quality", "department": "售后服务部"},
                          follow_redirects=False)
    assert response.status_code == 303
    ticket = _ticket(db, ticket_id)
    assert (ticket.category, ticket.department) == ("product_quality", "售后服务部")
    [row] = _audit(db, "ticket.classify")
    assert row.data["before"] == {"category": "service", "department": None}
    # a roadside problem is no complaint class
    assert agent.post(f"/console/tickets/{ticket_id}/classify", {"category": "flat_tyre"}).status_code == 422


# -- who may see and change -------------------------------------------------------------------------

ROUTES = [
    ("GET", "/console/tickets/{ticket_id}", {}),
    ("POST", "/console/tickets/{ticket_id}/status", {"to": "acknowledged"}),
    ("POST", "/console/tickets/{ticket_id}/assign", {"assignee_id": "me"}),
    ("POST", "/console/tickets/{ticket_id}/resolve", {"result": "好了"}),
    ("POST", "/console/tickets/{ticket_id}/close", {}),
    ("POST", "/console/tickets/{ticket_id}/classify", {"category": "other"}),
]


# one test per rule, each going over every route: a route added to ROUTES is checked by all of them


def test_another_dealers_ticket_is_404_on_every_route(agent: Console, world: World, db: Database) -> None:
    for method, path, form in ROUTES:
        url = path.format(ticket_id=world.b.ids["ticket_id"])
        response = agent.get(url) if method == "GET" else agent.post(url, form)
        assert response.status_code == 404, url
        assert "C-other-1" not in response.text
    ticket = _ticket(db, world.b.ids["ticket_id"])
    assert (ticket.status, ticket.assignee_id, ticket.category) == (TicketStatus.new, None, "service")
    assert agent.get("/console/tickets/999999").status_code == 404


def test_anonymous_requests_are_refused(client: TestClient, world: World, db: Database) -> None:
    for method, path, form in [("GET", "/console/tickets", {}), *ROUTES]:
        url = path.format(ticket_id=world.a.ids["ticket_id"])
        response = client.request(method, url, data=form or None, follow_redirects=False)
        assert response.status_code in (303, 401, 403), url
        if method == "GET":
            assert response.status_code == 303 and response.headers["location"].startswith("/console/login")
    assert _ticket(db, world.a.ids["ticket_id"]).status == TicketStatus.new


def test_a_form_without_the_csrf_token_is_refused(agent: Console, world: World, db: Database) -> None:
    ticket_id = world.a.ids["ticket_id"]
    _set_status(db, ticket_id, TicketStatus.in_progress)  # so a resolve would go through if it were let in
    for _, path, form in (route for route in ROUTES if route[0] == "POST"):
        response = agent.client.post(path.format(ticket_id=ticket_id), data=form, follow_redirects=False)
        assert response.status_code == 403, path
    ticket = _ticket(db, ticket_id)
    assert (ticket.status, ticket.assignee_id, ticket.category) == (TicketStatus.in_progress, None, "service")
    with db.sessions() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action.like("ticket.%"))).all() == []


def test_owner_text_is_shown_as_text(agent: Console, world: World, db: Database) -> None:
    with db.transaction() as session:
        ticket = session.get_one(Ticket, world.a.ids["ticket_id"])
        ticket.summary, ticket.details = XSS, {"said": XSS}
    for url in ("/console/tickets", f"/console/tickets/{world.a.ids['ticket_id']}"):
        html = agent.get(url).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=alert(2)&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html


def test_the_pages_carry_no_inline_script(agent: Console, world: World) -> None:
    for url in ("/console/tickets", f"/console/tickets/{world.a.ids['ticket_id']}"):
        html = agent.get(url).text
        assert "<script>" not in html and " onclick=" not in html and " onsubmit=" not in html and "style=" not in html

