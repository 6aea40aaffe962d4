"""The audit log page: managers and admins read their own dealer's staff actions (who, what, when, on which owner),
newest first, 50 a page, filtered; admins export it as CSV that spreadsheets cannot run; nothing of dealer B shows."""
from __future__ import annotations

import csv
import html as htmllib
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.console import audit_log
from bot.console.auth import get_clock
from bot.db import Database
from bot.models import AuditLog
from tests.console.conftest import NOW, Console, Records, World, sign_in

pytestmark = pytest.mark.db

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Sign-ins and exports happen at the world's NOW (pure function tests need no app)."""
    if "world" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    app.dependency_overrides[get_clock] = lambda: lambda: NOW
    yield
    app.dependency_overrides.pop(get_clock, None)


@pytest.fixture
def admin(app, world: World) -> Iterator[Console]:  # type: ignore[no-untyped-def]
    """Dealer A's admin, signed in (a browser of their own)."""
    with TestClient(app) as own:
        yield sign_in(own, "admin")


def log(db: Database, records: Records, action: str, *, staff: str | None = "manager", customer: bool = False,
        target: str = "", at: datetime = NOW, **data: Any) -> int:
    with db.transaction() as session:
        row = AuditLog(dealer_id=records.dealer_id, staff_id=records.staff[staff] if staff else None, action=action,
                       customer_id=records.ids["customer_id"] if customer else None, target=target, data=data, created_at=at)
        session.add(row)
        session.flush()
        return row.id


def entries(page: str) -> list[tuple[int, list[str]]]:
    """The log's rows as (id, cell texts), in page order."""
    found = []
    for row_id, body in re.findall(r'<tr data-id="(\d+)">(.*?)</tr>', page, re.DOTALL):
        cells = [htmllib.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", body, re.DOTALL)]
        found.append((int(row_id), cells))
    return found


def link(page: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return htmllib.unescape(match.group(1)) if match else None


def audit(console: Console, query: str = "") -> str:
    response = console.get(f"/console/audit{query}")
    assert response.status_code == 200, response.text
    return response.text


# -- who may look --------------------------------------------------------------------------------------


def test_an_agent_is_refused_the_log_and_its_export(agent: Console) -> None:
    assert agent.get("/console/audit").status_code == 403
    assert agent.get("/console/audit.csv").status_code == 403


def test_an_anonymous_browser_is_sent_to_sign_in(client: TestClient, world: World) -> None:
    for path in ("/console/audit", "/console/audit.csv"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login?next=")


def test_a_manager_reads_the_log_but_only_an_admin_exports_it(manager: Console) -> None:
    page = audit(manager)

    assert manager.get("/console/audit.csv").status_code == 403
    assert "/console/audit.csv" not in page


# -- what a row says ------------------------------------------------------------------------------------


def test_each_row_says_when_who_what_and_on_which_owner_newest_first(db: Database, world: World, manager: Console) -> None:
    row_id = log(db, world.a, "ticket.assign", customer=True, target="C-test-1", at=NOW + timedelta(minutes=1), to="agent")

    rows = entries(audit(manager))

    assert rows[0] == (row_id, ["2026-11-23 10:01:00", "manager-test", "分配工单", "王先生", "C-test-1", '{"to": "agent"}'])
    assert rows[1][1][:3] == ["2026-11-23 10:00:00", "manager-test", "登录"]  # the manager's own sign-in, labelled
    page = audit(manager)
    assert f'<a href="/console/owners/{world.a.ids["customer_id"]}">王先生</a>' in page


def test_a_failed_sign_in_shows_with_nobody_as_who_and_the_username_as_target(db: Database, world: World,
                                                                               manager: Console) -> None:
    log(db, world.a, "console.login_failed", staff=None, target="mallory", reason="unknown_user", ip="10.0.0.9")

    first = entries(audit(manager))[0][1]

    assert first[1:3] == ["（无）", "登录失败"] and first[4] == "mallory" and "unknown_user" in first[5]


def test_labels_follow_the_english_switch(world: World, manager: Console) -> None:
    manager.get("/console/lang/en")

    assert entries(audit(manager))[0][1][2] == "Signed in"


def test_another_dealers_rows_never_show(db: Database, world: World, manager: Console) -> None:
    log(db, world.b, "secret.b_action", staff="agent", customer=True, target="B-only-target", note="B-only-data")
    # a row of A that names B's owner (a bug elsewhere) must not reveal that owner's name
    with db.transaction() as session:
        session.add(AuditLog(dealer_id=world.a.dealer_id, staff_id=world.b.staff["agent"], action="odd.row",
                             customer_id=world.b.ids["customer_id"], target="", data={}, created_at=NOW))

    page = audit(manager)
    odd = entries(page)[0][1]

    assert "B-only" not in page and "secret.b_action" not in page and "agent-other" not in page
    assert odd[1] == "（无）" and odd[3] == f"#{world.b.ids['customer_id']}"
    assert f'/console/owners/{world.b.ids["customer_id"]}"' not in page
    assert entries(audit(manager, f"?staff_id={world.b.staff['agent']}&action=secret.b_action")) == []


def test_script_in_a_target_data_or_action_is_shown_as_text(db: Database, world: World, manager: Console) -> None:
    log(db, world.a, "<img src=x onerror=alert(1)>", target=SCRIPT, note=SCRIPT)

    page = audit(manager)

    assert SCRIPT not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert entries(page)[0][1][4] == SCRIPT  # the same text, once unescaped


# -- paging and filters ---------------------------------------------------------------------------------


def test_the_log_pages_50_at_a_time_keeping_the_filter(db: Database, world: World, manager: Console) -> None:
    with db.transaction() as session:
        session.add_all(AuditLog(dealer_id=world.a.dealer_id, staff_id=world.a.staff["admin"], action="bulk.test",
                                 target=f"row {n}", data={}, created_at=NOW + timedelta(seconds=n)) for n in range(120))

    first = audit(manager, "?action=bulk.test")
    older = link(first, "next")
    second = audit(manager, older.removeprefix("/console/audit") if older else "")
    third = audit(manager, (link(second, "next") or "").removeprefix("/console/audit"))

    pages = [[row_id for row_id, _ in entries(page)] for page in (first, second, third)]
    assert [len(ids) for ids in pages] == [50, 50, 20]
    everything = pages[0] + pages[1] + pages[2]
    assert everything == sorted(everything, reverse=True) and len(set(everything)) == 120
    assert older and "action=bulk.test" in older and f"before={pages[0][-1]}" in older
    assert link(first, "prev") is None and link(third, "next") is None
    back = link(second, "prev")
    assert back and [row_id for row_id, _ in entries(audit(manager, back.removeprefix("/console/audit")))] == pages[0]


def test_filters_by_staff_owner_action_and_dealer_local_dates(db: Database, world: World, manager: Console) -> None:
    late = log(db, world.a, "owner.edit", staff="admin", customer=True, at=datetime(2026, 11, 20, 15, 30, tzinfo=UTC))
    after_midnight = log(db, world.a, "owner.edit", staff="admin", at=datetime(2026, 11, 20, 16, 30, tzinfo=UTC))

    def ids(query: str) -> list[int]:
        return [row_id for row_id, _ in entries(audit(manager, query))]

    assert ids(f"?staff_id={world.a.staff['admin']}") == [after_midnight, late]
    assert ids(f"?customer_id={world.a.ids['customer_id']}") == [late]
    # 16:30 UTC on the 20th is 00:30 on the 21st in Shanghai: the dealer's day decides
    assert ids("?date_from=2026-11-21&date_to=2026-11-21") == [after_midnight]
    assert ids("?date_to=2026-11-20") == [late]
    assert ids("?action=owner.edit&date_from=2026-11-20") == [after_midnight, late]
    # an untouched filter form sends blanks: they mean "any", not an error
    assert len(ids("?staff_id=&action=&customer_id=&date_from=&date_to=")) == 3


def test_bad_query_values_are_a_422_never_a_500(world: World, manager: Console) -> None:
    for query in ("staff_id=abc", "customer_id=99999999999999999999999", "date_from=2026-13-01", "before=-1",
                  "date_to=1900-01-01", "date_from=9999-12-31", "after=x", f"action={'a' * 65}"):
        assert manager.get(f"/console/audit?{query}").status_code == 422, query


def test_an_unknown_staff_or_owner_id_is_just_an_empty_page(world: World, manager: Console) -> None:
    page = audit(manager, "?staff_id=987654&customer_id=123456&before=1")

    assert entries(page) == [] and "没有符合条件的记录" in page


# -- the CSV export -------------------------------------------------------------------------------------


def test_an_admin_exports_the_filtered_log_as_formula_safe_csv_and_the_export_is_logged(
    db: Database, world: World, admin: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_log, "EXPORT_BATCH", 2)  # several batches, each its own short read
    for n, target in enumerate(('=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)", "plain")):
        log(db, world.a, "ticket.assign", customer=True, target=target, at=NOW + timedelta(minutes=n), note=f"n{n}")
    log(db, world.b, "ticket.assign", staff="agent", target="B-only-target")

    response = admin.get("/console/audit.csv?action=ticket.assign")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="audit-log-')
    assert response.text.startswith("\ufeff")
    header, *rows = list(csv.reader(io.StringIO(response.text.removeprefix("\ufeff"))))
    assert header[:5] == ["id", "time", "staff_id", "staff", "action"]
    targets = [row[header.index("target")] for row in rows]
    assert targets == ["plain", "'@SUM(A1)", "'-2", "'+1", "'=HYPERLINK(\"http://evil.example\",\"x\")"]
    assert {row[header.index("owner")] for row in rows} == {"王先生"}
    assert "B-only-target" not in response.text
    with db.sessions() as session:
        export = session.scalars(select(AuditLog).where(AuditLog.action == "audit.export")).one()
    assert export.dealer_id == world.a.dealer_id and export.staff_id == world.a.staff["admin"]
    assert export.data == {"filters": {"action": "ticket.assign"}}


def test_safe_cell_defuses_formulas_only() -> None:
    assert [audit_log.safe_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "王先生", "a=b", "")] == [
        "'=1+1", "'+1", "'-1", "'@x", "'\tx", "王先生", "a=b", ""]


def test_every_console_action_has_a_label_in_both_languages() -> None:
    """Each action a console page audits reads as words, not as its code."""
    import re
    from pathlib import Path

    from bot.console import audit_log, text

    source = "".join(p.read_text() for p in Path(audit_log.__file__).parent.glob("*.py"))
    actions = set(re.findall(r'"((?:conversation|ticket|appointment|owner)\.[a-z_]+)"', source))
    actions = {action for action in actions if not action.endswith(".html")}  # template names, not actions
    assert {"conversation.reply", "ticket.resolve", "appointment.cancel", "owner.view"} <= actions
    for lang in ("zh", "en"):
        assert all(f"audit_action_{action}" in text.TEXT[lang] for action in actions), lang
