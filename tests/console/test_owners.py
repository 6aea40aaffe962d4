"""The owner view: everything about one owner on one page, the search that finds them, notes and tier edits,
and the rules every console page keeps (own dealer only, signed in, CSRF, owner text shown as text, audit)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from bot.console.owners import phone_digits
from bot.db import Database
from bot.models import (
    AuditLog,
    Channel,
    ChannelIdentity,
    ConversationEvent,
    Customer,
    Direction,
    Message,
    MessageStatus,
    ServiceRecord,
    SurveyResponse,
    Ticket,
    TicketKind,
    Vehicle,
)
from tests.console.conftest import NOW, Clock, Console, World, sign_in

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
XSS_SHOWN = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


def page_of(world: World) -> str:
    return f"/console/owners/{world.a.ids['customer_id']}"


def _customer(db: Database, customer_id: int) -> Customer:
    with db.transaction() as session:
        return session.get(Customer, customer_id)  # type: ignore[return-value]


def _audit_rows(db: Database, action: str) -> list[AuditLog]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


@pytest.fixture
def agent(client: TestClient, world: World, clock: Clock) -> Console:
    """Dealer A's agent, signed in on the console's test clock (NOW), so audit rows carry a known time."""
    return sign_in(client, "agent")


@pytest.fixture
def manager(app, world: World, clock: Clock) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    """Dealer A's manager in a browser of their own, on the same clock."""
    with TestClient(app) as own:
        yield sign_in(own, "manager")


# -- the page --------------------------------------------------------------------------------------


@pytest.mark.db
def test_the_owner_page_shows_profile_vehicles_history_appointments_tickets_surveys_and_the_conversation(
    agent: Console, world: World
) -> None:
    ids = world.a.ids
    response = agent.get(page_of(world))
    assert response.status_code == 200
    html = response.text
    assert "王先生" in html and "+8613800138000" in html  # profile
    assert "粤B12345" in html and "凯美瑞" in html  # vehicles
    assert "RO-test-1" in html and "小保养" in html and "更换机油机滤" in html  # service history, dealer's names
    assert "A-test-1" in html and 'href="/console/appointments?day=2026-11-24"' in html  # 10:00 Shanghai, the next day
    assert f'href="/console/tickets/{ids["ticket_id"]}"' in html and "C-test-1" in html  # tickets
    assert "太慢了" in html and "2 / 5" in html  # survey answer, with the ticket it opened
    assert f'href="/console/conversations/{ids["conversation_id"]}"' in html and "等待人工" in html
    assert "我要转人工" in html  # the transcript
    assert response.headers["cache-control"] == "no-store"
    assert "粤A99999" not in html and "C-other-1" not in html  # nothing of dealer B's


@pytest.mark.db
def test_the_page_shows_when_wechat_s_48_hour_window_is_closed_and_when_it_is_open(
    agent: Console, world: World, db: Database
) -> None:
    customer_id, dealer_id = world.a.ids["customer_id"], world.a.dealer_id
    with db.transaction() as session:
        session.add_all([
            ChannelIdentity(dealer_id=dealer_id, customer_id=customer_id, channel=Channel.wechat, address="o-quiet"),
            ChannelIdentity(dealer_id=dealer_id, customer_id=customer_id, channel=Channel.wechat, address="o-talking",
                            last_inbound_at=NOW),
            Message(dealer_id=dealer_id, conversation_id=world.a.ids["conversation_id"], channel=Channel.wechat,
                    direction=Direction.inbound, status=MessageStatus.handled, address="o-talking", text="在吗",
                    created_at=NOW),
        ])
    html = agent.get(page_of(world)).text
    assert "微信48小时窗口已关闭" in html  # o-quiet never wrote
    assert "微信48小时窗口开放" in html and "剩余可发 5" in html  # o-talking just wrote
    assert "在吗" in html  # WeChat and SMS in one transcript


@pytest.mark.db
def test_opening_the_page_records_who_viewed_the_owner_once_per_ten_minutes(
    agent: Console, manager: Console, world: World, db: Database, clock: Clock
) -> None:
    agent.get(page_of(world))
    agent.get(page_of(world))  # a refresh: the same view
    manager.get(page_of(world))
    clock.now = NOW + timedelta(minutes=11)
    agent.get(page_of(world))  # a new look
    views = _audit_rows(db, "owner.view")
    agent_id, manager_id, customer_id = world.a.staff["agent"], world.a.staff["manager"], world.a.ids["customer_id"]
    assert [(v.staff_id, v.customer_id, v.created_at) for v in views] == [
        (agent_id, customer_id, NOW), (manager_id, customer_id, NOW), (agent_id, customer_id, clock.now)]


@pytest.mark.db
def test_the_page_costs_the_same_queries_however_long_the_owner_s_history(
    agent: Console, world: World, db: Database
) -> None:
    _add_history(db, world, range(1))
    agent.get(page_of(world))  # the first view writes its audit row; the counted ones below do not
    before = _count_queries(db, lambda: agent.get(page_of(world)))
    _add_history(db, world, range(1, 6))
    after = _count_queries(db, lambda: agent.get(page_of(world)))
    assert after == before
    assert before <= 20


def _count_queries(db: Database, action) -> int:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert action().status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def _add_history(db: Database, world: World, numbers: range) -> None:
    """More of everything: vehicles, repair orders, tickets and staff notes."""
    dealer_id, customer_id = world.a.dealer_id, world.a.ids["customer_id"]
    with db.transaction() as session:
        for n in numbers:
            vehicle = Vehicle(dealer_id=dealer_id, customer_id=customer_id, plate=f"粤B0000{n}", model="RAV4")
            session.add(vehicle)
            session.flush()
            session.add_all([
                ServiceRecord(dealer_id=dealer_id, vehicle_id=vehicle.id, customer_id=customer_id, order_no=f"RO-x-{n}",
                              service_type="repair", opened_on=NOW.date()),
                Ticket(dealer_id=dealer_id, reference=f"C-x-{n}", kind=TicketKind.complaint, customer_id=customer_id,
                       created_at=NOW),
                ConversationEvent(dealer_id=dealer_id, conversation_id=world.a.ids["conversation_id"], kind="note",
                                  actor=f"staff:{world.a.staff['manager']}", data={"text": f"note {n}"}, created_at=NOW),
            ])


# -- only one's own dealer, only signed in, only with the CSRF token -------------------------------


@pytest.mark.db
def test_another_dealer_s_owner_is_not_found_on_every_owner_route(
    agent: Console, manager: Console, world: World, db: Database
) -> None:
    theirs = world.b.ids["customer_id"]
    assert agent.get(f"/console/owners/{theirs}").status_code == 404
    assert agent.post(f"/console/owners/{theirs}/notes", {"notes": "mine now"}).status_code == 404
    assert agent.post(f"/console/owners/{theirs}/tier", {"tier": "A"}).status_code == 404  # 404, not a telling 403
    assert manager.post(f"/console/owners/{theirs}/tier", {"tier": "A"}).status_code == 404
    assert agent.get(f"/console/owners/{theirs + 1000}").status_code == 404  # the same as one that does not exist
    assert agent.get(f"/console/owners/{2**64}").status_code == 422  # past BIGINT: refused, not a database error
    customer = _customer(db, theirs)
    assert (customer.notes, customer.tier) == ("", "C")
    assert _audit_rows(db, "owner.view") == [] and _audit_rows(db, "owner.notes") == []


@pytest.mark.db
def test_an_anonymous_browser_is_sent_to_sign_in_and_its_posts_are_refused(
    client: TestClient, world: World, db: Database
) -> None:
    response = client.get(page_of(world), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=/console/owners/")
    assert client.get("/console/owners?q=王", follow_redirects=False).status_code == 303
    for path, data in (("notes", {"notes": "hi"}), ("tier", {"tier": "A"})):
        response = client.post(f"{page_of(world)}/{path}", data=data, follow_redirects=False)
        assert response.status_code in (303, 401, 403)
        assert response.headers.get("location", "/console/login").startswith("/console/login")
    customer = _customer(db, world.a.ids["customer_id"])
    assert (customer.notes, customer.tier) == ("", "C")


@pytest.mark.db
def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    agent: Console, manager: Console, world: World, db: Database
) -> None:
    assert agent.client.post(f"{page_of(world)}/notes", data={"notes": "hi"}).status_code == 403
    assert manager.client.post(f"{page_of(world)}/tier", data={"tier": "A"}).status_code == 403
    assert agent.client.post(f"{page_of(world)}/notes", data={"notes": "hi", "csrf_token": "guess"}).status_code == 403
    customer = _customer(db, world.a.ids["customer_id"])
    assert (customer.notes, customer.tier) == ("", "C")
    assert _audit_rows(db, "owner.notes") == [] and _audit_rows(db, "owner.tier") == []


@pytest.mark.db
def test_owner_text_is_shown_as_text_never_as_markup(agent: Console, world: World, db: Database) -> None:
    ids, dealer_id = world.a.ids, world.a.dealer_id
    with db.transaction() as session:
        customer = session.get(Customer, ids["customer_id"])
        assert customer is not None
        customer.name = f"王{XSS}"
        customer.notes = f"备注{XSS}"
        response = session.scalars(select(SurveyResponse).where(SurveyResponse.dealer_id == dealer_id)).one()
        response.comment = f"太慢了{XSS}"
        session.add_all([
            Message(dealer_id=dealer_id, conversation_id=ids["conversation_id"], channel=Channel.sms,
                    direction=Direction.inbound, status=MessageStatus.handled, address="+8613800138000", text=XSS,
                    created_at=NOW),
            ConversationEvent(dealer_id=dealer_id, conversation_id=ids["conversation_id"], kind="note",
                              actor=f"staff:{world.a.staff['agent']}", data={"text": XSS}, created_at=NOW),
        ])
    for url in (page_of(world), "/console/owners?q=王"):
        html = agent.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert XSS_SHOWN in html, url
    assert agent.get(page_of(world)).text.count(XSS_SHOWN) == 7  # name (title, heading, profile), notes, message, internal note, comment


# -- search ----------------------------------------------------------------------------------------


@pytest.mark.db
def test_search_finds_the_owner_by_plate_phone_or_name_and_never_another_dealer_s(agent: Console, world: World) -> None:
    mine = f'href="/console/owners/{world.a.ids["customer_id"]}"'
    theirs = f'href="/console/owners/{world.b.ids["customer_id"]}"'  # B's owner is a 王先生 too
    for query in ("粤B12345", "粤b 12345", "B123", "13800138000", "+86 138 0013 8000", "138-0013-8000",
                  "008613800138000", "王先"):
        response = agent.get("/console/owners", params={"q": query})
        assert response.status_code == 200
        assert mine in response.text and theirs not in response.text, query
    for query in ("粤A99999", "13900139000", "%", "_", "粤B%"):  # B's plate and phone; wildcards are plain text
        html = agent.get("/console/owners", params={"q": query}).text
        assert mine not in html and theirs not in html and "没有找到匹配的车主" in html, query


@pytest.mark.parametrize(("typed", "digits"), [
    ("13800138000", "13800138000"), ("+8613800138000", "13800138000"), ("0086 138 0013 8000", "13800138000"),
    ("8613800138000", "13800138000"), ("020-88886666", "2088886666"), ("8000", "8000"), ("粤B12345", None), ("王", None),
])
def test_phone_digits_are_what_a_stored_e164_number_contains(typed: str, digits: str | None) -> None:
    assert phone_digits(typed) == digits


# -- notes and tier --------------------------------------------------------------------------------


@pytest.mark.db
def test_saving_notes_updates_the_owner_and_writes_who_what_when_on_whom(agent: Console, world: World, db: Database) -> None:
    response = agent.post(f"{page_of(world)}/notes", {"notes": "喜欢周六上午来店\r\n不要打电话"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"{page_of(world)}?saved=notes"
    assert _customer(db, world.a.ids["customer_id"]).notes == "喜欢周六上午来店\n不要打电话"
    [row] = _audit_rows(db, "owner.notes")
    assert (row.staff_id, row.customer_id, row.dealer_id, row.created_at) == (
        world.a.staff["agent"], world.a.ids["customer_id"], world.a.dealer_id, NOW)
    assert row.data == {"before_length": 0, "after_length": 14}  # lengths, not a second copy of the text
    html = agent.get(response.headers["location"]).text
    assert "备注已保存" in html and "喜欢周六上午来店" in html
    agent.post(f"{page_of(world)}/notes", {"notes": "喜欢周六上午来店\n不要打电话"})  # unchanged: no action
    assert len(_audit_rows(db, "owner.notes")) == 1


@pytest.mark.db
def test_notes_longer_than_2000_characters_are_refused(agent: Console, world: World, db: Database) -> None:
    assert agent.post(f"{page_of(world)}/notes", {"notes": "长" * 2001}).status_code == 422
    assert agent.post(f"{page_of(world)}/notes", {}).status_code == 422
    assert _customer(db, world.a.ids["customer_id"]).notes == ""


@pytest.mark.db
def test_managers_re_tier_an_owner_agents_may_not_and_only_a_b_or_c_exists(
    agent: Console, manager: Console, world: World, db: Database
) -> None:
    assert "修改等级" not in agent.get(page_of(world)).text
    assert agent.post(f"{page_of(world)}/tier", {"tier": "A"}).status_code == 403
    assert manager.post(f"{page_of(world)}/tier", {"tier": "D"}).status_code == 422
    response = manager.post(f"{page_of(world)}/tier", {"tier": "A"}, follow_redirects=False)
    assert response.status_code == 303
    assert _customer(db, world.a.ids["customer_id"]).tier == "A"
    [row] = _audit_rows(db, "owner.tier")
    assert (row.staff_id, row.customer_id, row.data) == (world.a.staff["manager"], world.a.ids["customer_id"],
                                                         {"before": "C", "after": "A"})
    assert "A 类（每 1-3 个月联系）" in manager.get(page_of(world)).text

