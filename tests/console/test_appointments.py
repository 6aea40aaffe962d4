"""The appointments day view: each bay's day with its capacity, and staff confirming, moving and cancelling
appointments, the owner told each time and every change in the audit log.

The world (tests/console/conftest.py): dealer A ("test", 4 bays, open around the clock, minor_service 60 min)
has appointment A-test-1 on 24 Nov 2026 at 10:00 Shanghai time in bay 1; dealer B ("other") has A-other-1.
The console's clock stands at 23 Nov 2026 10:00 Shanghai time.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.console.appointments import ACTIONS, Item, build_day
from bot.console.auth import get_clock
from bot.db import Database
from bot.dealer_config import DayHours, DealerConfig
from bot.models import (
    Appointment,
    AuditLog,
    Conversation,
    Customer,
    Direction,
    Message,
    Outbox,
)
from tests.console.conftest import NOW, Console, World, sign_in
from tests.factories import make_customer

pytestmark = pytest.mark.db

TOMORROW = "2026-11-24"  # A-test-1's day
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def agent(app, client: TestClient, world: World) -> Console:  # type: ignore[no-untyped-def]
    """Dealer A's agent, signed in while the console's clock stands still at NOW (so the session starts then too)."""
    app.dependency_overrides[get_clock] = lambda: lambda: NOW
    return sign_in(client, "agent")


# -- helpers ---------------------------------------------------------------------------------------


def _appointment(db: Database, appointment_id: int) -> Appointment:
    with db.sessions() as session:
        return session.get_one(Appointment, appointment_id)


def _owner_messages(db: Database, conversation_id: int) -> list[Message]:
    with db.sessions() as session:
        return list(session.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                          Message.direction == Direction.outbound).order_by(Message.id)))


def _audit(db: Database, action: str) -> list[AuditLog]:
    with db.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _outbox_count(db: Database) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count()).select_from(Outbox)) or 0


def _add_appointment(db: Database, world: World, reference: str, starts_at: datetime, *, bay: int, minutes: int = 60,
                     customer_id: int | None = None, status: str = "booked") -> int:
    with db.transaction() as session:
        row = Appointment(dealer_id=world.a.dealer_id, reference=reference, customer_id=customer_id or world.a.ids["customer_id"],
                          service_type="minor_service", starts_at=starts_at, ends_at=starts_at + timedelta(minutes=minutes),
                          bay=bay, status=status)
        session.add(row)
        session.flush()
        return row.id


def _set(db: Database, model: type, row_id: int, **values: object) -> None:
    with db.transaction() as session:
        row = session.get_one(model, row_id)
        for name, value in values.items():
            setattr(row, name, value)


def _local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# -- the day view ----------------------------------------------------------------------------------


def test_the_day_view_shows_dealer_a_appointment_in_bay_1_and_not_dealer_b(agent: Console, world: World) -> None:
    page = agent.get(f"/console/appointments?day={TOMORROW}")

    assert page.status_code == 200
    html = page.text
    # bay 1 is the first cell after the time; 60 minutes on a 30-minute grid take two rows
    assert re.search(r'<th scope="row">10:00</th>\s*<td rowspan="2" class="booked">(?:(?!</td>).)*A-test-1', html, re.DOTALL)
    assert "粤B12345" in html and "王先生" in html and "小保养" in html and "已预约" in html
    assert f'href="/console/owners/{world.a.ids["customer_id"]}"' in html
    assert "A-other-1" not in html and "粤A99999" not in html
    grid = html.split('class="list appt-grid"', 1)[1]
    assert re.findall(r'<th scope="col">工位 (\d)</th>', grid) == ["1", "2", "3", "4"]  # one column per bay


def test_the_day_view_shows_capacity_per_bay_and_for_the_day(agent: Console, world: World, db: Database) -> None:
    _add_appointment(db, world, "A-test-2", _local(2026, 11, 24, 14), bay=2, minutes=120)

    html = agent.get(f"/console/appointments?day={TOMORROW}").text

    capacity = html.split('class="list capacity"', 1)[1].split("</table>", 1)[0]
    # open 00:00-23:59 is 1439 minutes a bay
    assert re.search(r'data-bay="1">\s*<th scope="row">工位 1</th><td>1</td>\s*<td>60 / 1439</td>\s*<td>4%</td>', capacity)
    assert re.search(r'data-bay="2">\s*<th scope="row">工位 2</th><td>1</td>\s*<td>120 / 1439</td>\s*<td>8%</td>', capacity)
    assert re.search(r'data-bay="3">\s*<th scope="row">工位 3</th><td>0</td>\s*<td>0 / 1439</td>\s*<td>0%</td>', capacity)
    assert re.search(r"全天</th><td>2</td>\s*<td>180 / 5756</td>\s*<td>3%</td>", capacity)


def test_without_a_day_it_shows_today_with_links_to_the_days_around(agent: Console) -> None:
    page = agent.get("/console/appointments")

    assert page.status_code == 200
    assert "预约 · 2026-11-23" in page.text
    assert 'href="/console/appointments?day=2026-11-22"' in page.text
    assert 'href="/console/appointments?day=2026-11-24"' in page.text
    assert "当天没有预约" in page.text and "A-test-1" not in page.text


@pytest.mark.parametrize("day", ["next-tuesday", "2026-13-01", "0001-01-01", "9999-12-31", "<script>"])
def test_a_bad_day_answers_422_and_shows_today(agent: Console, day: str) -> None:
    page = agent.get("/console/appointments", params={"day": day})

    assert page.status_code == 422
    assert "日期格式不正确" in page.text and "预约 · 2026-11-23" in page.text
    assert "<script>" not in page.text


def test_cancelled_appointments_are_listed_apart_not_in_the_grid(agent: Console, world: World, db: Database) -> None:
    _set(db, Appointment, world.a.ids["appointment_id"], status="cancelled")

    html = agent.get(f"/console/appointments?day={TOMORROW}").text

    grid, cancelled = html.split('class="list appt-grid"', 1)[1].split("已取消的预约", 1)
    assert "A-test-1" not in grid
    assert "A-test-1" in cancelled
    assert "当天没有预约" in html


def test_owner_text_is_shown_as_text(agent: Console, world: World, db: Database) -> None:
    _set(db, Appointment, world.a.ids["appointment_id"], notes="<script>alert(1)</script>")
    _set(db, Customer, world.a.ids["customer_id"], name="<img src=x onerror=alert(1)>")

    for url in (f"/console/appointments?day={TOMORROW}", f"/console/appointments/{world.a.ids['appointment_id']}"):
        html = agent.get(url).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<script>alert" not in html and "<img src=x" not in html


def test_the_appointment_page_shows_its_facts_and_free_times_nearby(agent: Console, world: World) -> None:
    page = agent.get(f"/console/appointments/{world.a.ids['appointment_id']}")

    assert page.status_code == 200
    assert "A-test-1" in page.text and "2026-11-24 10:00–11:00" in page.text and "粤B12345" in page.text
    assert "附近可预约的时间" in page.text and "2026-11-24 10:30" in page.text


# -- confirm ---------------------------------------------------------------------------------------


def test_confirming_tells_the_owner_and_writes_the_audit_log(agent: Console, world: World, db: Database) -> None:
    appointment_id = world.a.ids["appointment_id"]

    response = agent.post(f"/console/appointments/{appointment_id}/confirm", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/appointments/{appointment_id}?done=confirm"
    assert _appointment(db, appointment_id).status == "confirmed"
    [message] = _owner_messages(db, world.a.ids["conversation_id"])[-1:]
    assert message.text.startswith("您的预约（编号 A-test-1）已确认：11月24日 10:00，小保养。")
    assert message.sender == f"staff:{world.a.staff['agent']}"
    with db.sessions() as session:
        outbox = session.scalars(select(Outbox).where(Outbox.message_id == message.id)).one()
    assert (outbox.kind, outbox.channel.value, outbox.address) == ("appointment_update", "sms", "+8613800138000")
    [row] = _audit(db, "appointment.confirm")
    assert (row.staff_id, row.customer_id, row.target) == (world.a.staff["agent"], world.a.ids["customer_id"], "A-test-1")
    assert row.data["notified"] is True
    assert "预约已确认" in agent.get(response.headers["location"]).text


def test_confirming_from_the_day_view_goes_back_to_the_day(agent: Console, world: World) -> None:
    response = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/confirm", {"back": "day"},
                          follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/appointments?day={TOMORROW}&done=confirm"


def test_an_owner_writing_in_english_is_told_in_english(agent: Console, world: World, db: Database) -> None:
    _set(db, Customer, world.a.ids["customer_id"], language="en")

    agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/confirm")

    text = _owner_messages(db, world.a.ids["conversation_id"])[-1].text
    assert text.startswith("Your appointment (A-test-1) is confirmed: 24 Nov 10:00, minor service.")


def test_only_a_booked_appointment_can_be_confirmed(agent: Console, world: World, db: Database) -> None:
    for status in ("confirmed", "done", "cancelled", "no_show"):
        _set(db, Appointment, world.a.ids["appointment_id"], status=status)

        response = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/confirm")

        assert response.status_code == 409, status
        assert "只有“已预约”的预约可以确认" in response.text
        assert _appointment(db, world.a.ids["appointment_id"]).status == status
    assert _outbox_count(db) == 0 and _audit(db, "appointment.confirm") == []


def test_an_owner_with_no_conversation_is_not_told_and_staff_are_warned(agent: Console, world: World, db: Database) -> None:
    with db.transaction() as session:
        from bot.models import Dealer

        dealer = session.get_one(Dealer, world.a.dealer_id)
        lonely = make_customer(session, dealer, name="李女士", phone="+8613700137000", plate="粤B54321").id
    appointment_id = _add_appointment(db, world, "A-test-9", _local(2026, 11, 24, 15), bay=2, customer_id=lonely)

    response = agent.post(f"/console/appointments/{appointment_id}/confirm")

    assert response.status_code == 200  # after the redirect
    assert "未能通知车主" in response.text
    assert _appointment(db, appointment_id).status == "confirmed"
    assert _outbox_count(db) == 0
    assert _audit(db, "appointment.confirm")[0].data["notified"] is False


# -- reschedule ------------------------------------------------------------------------------------


def test_rescheduling_moves_it_tells_the_owner_the_new_time_and_is_audited(agent: Console, world: World,
                                                                          db: Database) -> None:
    appointment_id = world.a.ids["appointment_id"]

    response = agent.post(f"/console/appointments/{appointment_id}/reschedule", {"date": "2026-11-25", "time": "15:00"},
                          follow_redirects=False)

    assert response.status_code == 303
    moved = _appointment(db, appointment_id)
    assert (moved.starts_at, moved.ends_at, moved.bay) == (_local(2026, 11, 25, 15), _local(2026, 11, 25, 16), 1)
    text = _owner_messages(db, world.a.ids["conversation_id"])[-1].text
    assert "A-test-1" in text and "改到：11月25日 15:00，小保养" in text
    [row] = _audit(db, "appointment.reschedule")
    assert (row.staff_id, row.customer_id, row.target) == (world.a.staff["agent"], world.a.ids["customer_id"], "A-test-1")
    assert row.data["starts_at_before"] == _local(2026, 11, 24, 10).isoformat()
    assert row.data["starts_at"] == _local(2026, 11, 25, 15).isoformat()
    assert "A-test-1" in agent.get("/console/appointments?day=2026-11-25").text


def test_moving_only_to_another_bay_does_not_bother_the_owner(agent: Console, world: World, db: Database) -> None:
    appointment_id = world.a.ids["appointment_id"]

    response = agent.post(f"/console/appointments/{appointment_id}/reschedule",
                          {"date": TOMORROW, "time": "10:00", "bay": "3"}, follow_redirects=False)

    assert response.status_code == 303 and "unreached" not in response.headers["location"]
    assert _appointment(db, appointment_id).bay == 3
    assert _outbox_count(db) == 0
    assert _audit(db, "appointment.reschedule")[0].data["bay"] == 3


def test_rescheduling_into_a_taken_bay_is_refused(agent: Console, world: World, db: Database) -> None:
    _add_appointment(db, world, "A-test-2", _local(2026, 11, 25, 14, 30), bay=2)

    response = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule",
                          {"date": "2026-11-25", "time": "15:00", "bay": "2"})

    assert response.status_code == 409
    assert "2 号工位在该时段已有预约" in response.text
    assert 'value="2026-11-25"' in response.text  # what staff typed is kept
    assert _appointment(db, world.a.ids["appointment_id"]).starts_at == _local(2026, 11, 24, 10)
    assert _outbox_count(db) == 0 and _audit(db, "appointment.reschedule") == []


def test_rescheduling_without_a_bay_takes_a_free_one(agent: Console, world: World, db: Database) -> None:
    _add_appointment(db, world, "A-test-2", _local(2026, 11, 25, 15), bay=1)

    agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule", {"date": "2026-11-25", "time": "15:00"})

    assert _appointment(db, world.a.ids["appointment_id"]).bay == 2


def test_rescheduling_when_every_bay_is_taken_is_refused(agent: Console, world: World, db: Database) -> None:
    for bay in range(1, 5):
        _add_appointment(db, world, f"A-test-{bay + 1}", _local(2026, 11, 25, 15), bay=bay)

    response = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule",
                          {"date": "2026-11-25", "time": "15:30"})

    assert response.status_code == 409
    assert "所有工位都已约满" in response.text
    assert _appointment(db, world.a.ids["appointment_id"]).starts_at == _local(2026, 11, 24, 10)


IMPOSSIBLE = [
    ({"date": "2026-11-25", "time": "23:30"}, "不在营业时间内"),  # 60 minutes would run past 23:59
    ({"date": "2026-11-22", "time": "10:00"}, "已经过去"),
    ({"date": "next week", "time": "10:00"}, "请填写正确的日期"),
    ({"date": "2026-11-25", "time": "25:00"}, "请填写正确的日期"),
    ({"date": "2026-11-25", "time": "15:00", "bay": "9"}, "工位编号应在 1 到 4 之间"),
    ({"date": "2026-11-25", "time": "15:00", "bay": "two"}, "工位必须是数字"),
    ({"date": TOMORROW, "time": "10:00"}, "无需改期"),
]


def test_rescheduling_to_an_impossible_time_is_refused(agent: Console, world: World, db: Database) -> None:
    for form, says in IMPOSSIBLE:
        response = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule", form)

        assert response.status_code in (409, 422), form
        assert says in response.text, form
    assert _appointment(db, world.a.ids["appointment_id"]).starts_at == _local(2026, 11, 24, 10)
    assert _outbox_count(db) == 0 and _audit(db, "appointment.reschedule") == []


def test_outside_opening_hours_is_refused_on_a_dealer_with_hours(agent: Console, world: World, db: Database) -> None:
    with db.transaction() as session:
        from bot.models import Dealer

        dealer = session.get_one(Dealer, world.a.dealer_id)
        config = DealerConfig.model_validate(dealer.config)
        config.hours = {day: DayHours(open="08:30", close="18:00") for day in range(5)}  # type: ignore[arg-type]
        dealer.config = config.model_dump(mode="json")

    early = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule",
                       {"date": "2026-11-25", "time": "08:00"})
    weekend = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/reschedule",
                         {"date": "2026-11-28", "time": "10:00"})

    assert early.status_code == 422 and "不在营业时间内" in early.text
    assert weekend.status_code == 422 and "当天不营业" in weekend.text


# -- cancel ----------------------------------------------------------------------------------------


def test_cancelling_tells_the_owner_why_and_is_audited(agent: Console, world: World, db: Database) -> None:
    appointment_id = world.a.ids["appointment_id"]

    response = agent.post(f"/console/appointments/{appointment_id}/cancel", {"reason": "技师临时请假"}, follow_redirects=False)

    assert response.status_code == 303
    assert _appointment(db, appointment_id).status == "cancelled"
    text = _owner_messages(db, world.a.ids["conversation_id"])[-1].text
    assert "A-test-1" in text and "已取消，原因：技师临时请假" in text
    [row] = _audit(db, "appointment.cancel")
    assert (row.staff_id, row.customer_id, row.target) == (world.a.staff["agent"], world.a.ids["customer_id"], "A-test-1")
    assert (row.data["reason"], row.data["status_before"]) == ("技师临时请假", "booked")


def test_cancelling_a_cancelled_appointment_is_refused(agent: Console, world: World, db: Database) -> None:
    agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/cancel")

    again = agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/cancel")

    assert again.status_code == 409
    assert "当前状态：已取消" in again.text
    assert len(_audit(db, "appointment.cancel")) == 1 and _outbox_count(db) == 1


# -- who may do what -------------------------------------------------------------------------------


def test_dealer_b_appointment_is_not_found_on_any_route(agent: Console, world: World, db: Database) -> None:
    url = f"/console/appointments/{world.b.ids['appointment_id']}"

    assert agent.get(url).status_code == 404
    assert agent.post(f"{url}/confirm").status_code == 404
    assert agent.post(f"{url}/reschedule", {"date": "2026-11-25", "time": "15:00"}).status_code == 404
    assert agent.post(f"{url}/cancel", {"reason": "x"}).status_code == 404

    other = _appointment(db, world.b.ids["appointment_id"])
    assert (other.status, other.starts_at) == ("booked", NOW + timedelta(days=1))
    assert _outbox_count(db) == 0 and _audit(db, "appointment.confirm") == []


@pytest.mark.parametrize("url", ["/console/appointments", "/console/appointments/1"])
def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient, world: World, url: str) -> None:
    response = client.get(url, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")


def test_a_form_without_the_csrf_token_is_refused(agent: Console, world: World, db: Database) -> None:
    for action in ACTIONS:
        response = agent.client.post(f"/console/appointments/{world.a.ids['appointment_id']}/{action}",
                                     data={"date": "2026-11-25", "time": "15:00"})

        assert response.status_code == 403, action
    appointment = _appointment(db, world.a.ids["appointment_id"])
    assert (appointment.status, appointment.starts_at) == ("booked", _local(2026, 11, 24, 10))
    assert _outbox_count(db) == 0
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action.like("appointment.%"))) == 0


def test_the_owner_message_goes_to_the_latest_conversation(agent: Console, world: World, db: Database) -> None:
    with db.transaction() as session:
        old = session.get_one(Conversation, world.a.ids["conversation_id"])
        newer = Conversation(dealer_id=old.dealer_id, customer_id=old.customer_id, status=old.status,
                             last_channel=old.last_channel, last_message_at=NOW + timedelta(minutes=5), created_at=NOW,
                             updated_at=NOW)
        session.add(newer)
        session.flush()
        newer_id = newer.id

    agent.post(f"/console/appointments/{world.a.ids['appointment_id']}/confirm")

    assert len(_owner_messages(db, newer_id)) == 1
    assert _owner_messages(db, world.a.ids["conversation_id"]) == []


# -- the grid itself (no database) -----------------------------------------------------------------


def _item(item_id: int, hour: int, minutes: int, *, bay: int = 1) -> Item:
    start = _local(2026, 11, 24, hour)
    return Item(id=item_id, reference=f"A-{item_id}", customer_id=1, owner="", plate="", service="", status="booked",
                starts_at=start, ends_at=start + timedelta(minutes=minutes), bay=bay, notes="")


def test_a_double_booked_bay_shows_one_flagged_block() -> None:
    config = DealerConfig(hours={1: DayHours(open="08:30", close="18:00")}, bays=2)  # type: ignore[arg-type]

    view = build_day(config, SHANGHAI, datetime(2026, 11, 24).date(), [_item(1, 10, 60), _item(2, 10, 90), _item(3, 7, 30)])

    blocks = [cell.block for row in view.rows for cell in row.cells[:1] if cell.block]
    assert [([i.id for i in b.items], b.rowspan, b.conflict) for b in blocks] == [([3], 1, False), ([1, 2], 3, True)]
    # the 07:00 appointment widens the grid to before opening; those rows are marked shut
    assert view.rows[0].starts_at == _local(2026, 11, 24, 7) and not view.rows[0].open
    assert view.rows[3].starts_at == _local(2026, 11, 24, 8, 30) and view.rows[3].open
    assert view.total.open_minutes == 570 * 2

