"""The reports page: managers see their own dealer's CSAT/NPS trend, reminder conversion and complaints by class,
drawn as SVG with a table of the same numbers; agents and strangers see nothing, and no other dealer's rows count."""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from bot.console.auth import get_clock
from bot.console.charts import Chart, Series
from bot.console.report_queries import last_months, survey_trend
from bot.db import Database
from bot.models import (
    Appointment,
    Dealer,
    Outbox,
    OutboxStatus,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
)
from bot.reports import survey_report
from tests.console.conftest import NOW, Console, Records, World, sign_in
from tests.factories import make_customer

pytestmark = pytest.mark.db

MONTH = "2026-11"  # NOW's month in Shanghai
_references = itertools.count(1)


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """The console's clock stands at the world's NOW, so its rows fall in this month (pure chart tests need no app)."""
    if "world" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    app.dependency_overrides[get_clock] = lambda: lambda: NOW
    yield
    app.dependency_overrides.pop(get_clock, None)


# -- reading the page like a screen reader: the tables under the charts ------------------------------


class _Tables(HTMLParser):
    """Collects each <table id=...> as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, table_id: str) -> dict[str, dict[str, str]]:
    """A table as {row heading: {column heading: cell}}."""
    parser = _Tables()
    parser.feed(html)
    header, *rows = parser.tables[table_id]
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows}


def reports(console: Console, query: str = "") -> str:
    response = console.get(f"/console/reports{query}")
    assert response.status_code == 200, response.text
    return response.text


# -- test data -----------------------------------------------------------------------------------------


def add_tickets(db: Database, records: Records, *categories: str, kind: TicketKind = TicketKind.complaint,
                at: datetime = NOW) -> None:
    with db.transaction() as session:
        for category in categories:
            session.add(Ticket(dealer_id=records.dealer_id, reference=f"T-{next(_references)}",
                               kind=kind, customer_id=records.ids["customer_id"], category=category, created_at=at))


def add_survey(db: Database, records: Records, kind: str, score: int | None, *, sent_at: datetime = NOW) -> None:
    with db.transaction() as session:
        survey = Survey(dealer_id=records.dealer_id, customer_id=records.ids["customer_id"], kind=kind, sent_at=sent_at)
        session.add(survey)
        session.flush()
        if score is not None:
            session.add(SurveyResponse(dealer_id=records.dealer_id, survey_id=survey.id, score=score, created_at=sent_at))


def new_owner(db: Database, records: Records, phone: str) -> int:
    """A fresh owner with no appointment yet: the world's own appointment stays out of conversion tests."""
    with db.transaction() as session:
        dealer = session.get_one(Dealer, records.dealer_id)
        return make_customer(session, dealer, phone=phone, plate=f"粤C{phone[-5:]}").id


def add_reminder(db: Database, records: Records, customer_id: int, sent_at: datetime, *, kind: str = "reminder:maintenance",
                 status: OutboxStatus = OutboxStatus.delivered) -> None:
    with db.transaction() as session:
        session.add(Outbox(dealer_id=records.dealer_id, customer_id=customer_id, kind=kind, status=status, sent_at=sent_at,
                           dedupe_key=f"{kind}:{customer_id}:{sent_at.isoformat()}", body="该保养了", not_before=sent_at))


def add_booking(db: Database, records: Records, customer_id: int, created_at: datetime) -> None:
    with db.transaction() as session:
        session.add(Appointment(dealer_id=records.dealer_id, reference=f"A-{customer_id}-{created_at:%m%d%H%M}",
                                customer_id=customer_id, service_type="minor_service", starts_at=created_at + timedelta(days=3),
                                ends_at=created_at + timedelta(days=3, hours=1), created_at=created_at))


# -- who may look --------------------------------------------------------------------------------------


def test_an_agent_is_refused_the_reports(agent: Console) -> None:
    assert agent.get("/console/reports").status_code == 403


def test_an_anonymous_browser_is_sent_to_sign_in(client: TestClient, world: World) -> None:
    response = client.get("/console/reports?months=3", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=/console/reports")


def test_an_admin_may_read_the_reports(app, world: World) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as browser:
        admin = sign_in(browser, "admin")
        assert admin.get("/console/reports").status_code == 200


def test_a_bad_month_count_is_a_422_not_a_500(manager: Console) -> None:
    for months in ("0", "25", "abc", "-3", "1e9", ""):
        assert manager.get(f"/console/reports?months={months}").status_code == 422, months


# -- what the manager sees -------------------------------------------------------------------------------


def test_complaints_by_class_count_the_managers_dealer_only(db: Database, world: World, manager: Console) -> None:
    # B's tickets are many and of other classes, so any leak would show
    add_tickets(db, world.b, "product_quality", "product_quality", "product_quality", "other")
    add_tickets(db, world.b, "other", "other", kind=TicketKind.roadside)
    add_tickets(db, world.a, "safety-<script>", kind=TicketKind.complaint)  # an unknown class counts as "other"
    add_tickets(db, world.a, "other", kind=TicketKind.roadside)
    # 01:00 on 1 November in Shanghai is still 31 October in UTC: it counts in the dealer's November
    add_tickets(db, world.a, "product_quality", at=datetime(2026, 10, 31, 17, 0, tzinfo=UTC))

    html = reports(manager)
    month = table(html, "chart-tickets-data")[MONTH]

    assert month == {"产品质量": "1", "服务": "1", "其他": "1", "道路救援": "1", "合计": "4"}
    assert table(html, "chart-tickets-data")["2026-10"]["合计"] == "0"
    assert "safety-&lt;script&gt;" not in html and "safety-<script>" not in html


def test_the_csat_trend_shows_the_score_2_answer_and_not_the_other_dealers(
    db: Database, world: World, manager: Console
) -> None:
    add_survey(db, world.b, "csat", 5)
    add_survey(db, world.b, "nps", 10)

    html = reports(manager)
    csat = table(html, "chart-csat-data")[MONTH]
    share = table(html, "chart-nps-data")[MONTH]

    assert csat == {"CSAT 平均分": "2.00", "CSAT 回复数": "1", "调查发送数（全部）": "1", "调查回复数（全部）": "1"}
    assert share == {"满意占比": "0%", "NPS": "-", "NPS 回复数": "0"}
    assert table(html, "chart-csat-data")["2026-10"]["CSAT 平均分"] == "-"  # no answers is no value, not a zero


def test_nps_is_promoters_minus_detractors_over_the_answers(db: Database, world: World, manager: Console) -> None:
    for score in (10, 9, 3):
        add_survey(db, world.a, "nps", score)
    add_survey(db, world.a, "nps", None)  # asked, never answered: sent but not in the score

    share = table(reports(manager), "chart-nps-data")[MONTH]

    assert share["NPS"] == "+33" and share["NPS 回复数"] == "3"


def test_the_trend_agrees_with_the_cli_survey_report(db: Database, world: World) -> None:
    add_survey(db, world.a, "csat", 5)
    add_survey(db, world.a, "csat", 4, sent_at=NOW - timedelta(days=40))
    add_survey(db, world.a, "nps", 8)
    with db.sessions() as session:
        trend = survey_trend(session, world.a.dealer_id, last_months(NOW, "Asia/Shanghai", 3))
        cli = survey_report(session, dealer="test")

    for line in trend:
        same = [other for other in cli if other.month == line.month]
        assert line.sent == sum(other.sent for other in same)
        assert line.csat_average == (same[0].csat_average if same else None)
        assert line.nps == (same[0].nps if same else None)


def test_a_reminder_followed_by_a_booking_within_14_days_converts(db: Database, world: World, manager: Console) -> None:
    quick, slow, lapsed = (new_owner(db, world.a, phone) for phone in ("+8613700000001", "+8613700000002", "+8613700000003"))
    add_reminder(db, world.a, quick, NOW - timedelta(days=10))
    add_booking(db, world.a, quick, NOW - timedelta(days=5))  # booked five days after: converted
    add_reminder(db, world.a, slow, datetime(2026, 10, 20, 2, 0, tzinfo=UTC))
    add_booking(db, world.a, slow, datetime(2026, 11, 15, 2, 0, tzinfo=UTC))  # 26 days later: not the reminder's doing
    add_booking(db, world.a, lapsed, NOW - timedelta(days=3))
    add_reminder(db, world.a, lapsed, NOW - timedelta(days=2))  # booked *before* the reminder: not a conversion
    add_reminder(db, world.a, quick, NOW - timedelta(days=9), status=OutboxStatus.failed)  # never reached the owner
    add_reminder(db, world.a, quick, NOW - timedelta(days=8), kind="reminder:appointment_tomorrow")  # asks no booking
    just_in, just_out = new_owner(db, world.a, "+8613700000004"), new_owner(db, world.a, "+8613700000005")
    for owner, after in ((just_in, timedelta(days=14, minutes=-1)), (just_out, timedelta(days=14))):
        add_reminder(db, world.a, owner, NOW - timedelta(days=20))
        add_booking(db, world.a, owner, NOW - timedelta(days=20) + after)  # the window ends just before day 14
    stranger = new_owner(db, world.b, "+8613600000009")
    add_reminder(db, world.b, stranger, NOW - timedelta(days=4))
    add_booking(db, world.b, stranger, NOW - timedelta(days=1))

    html = reports(manager)
    months = table(html, "chart-conversion-data")

    assert months[MONTH] == {"已发送提醒": "4", "14 天内预约": "2", "转化率": "50%"}
    assert months["2026-10"] == {"已发送提醒": "1", "14 天内预约": "0", "转化率": "0%"}
    assert months["2026-09"]["转化率"] == "-"
    assert table(html, "conversion-by-kind") == {"定期保养": {"已发送提醒": "5", "14 天内预约": "2", "转化率": "40%"}}
    assert re.search(r'id="conversion-total">40%<', html)


def test_months_picks_the_period_in_dealer_months(db: Database, world: World, manager: Console) -> None:
    one = table(reports(manager, "?months=1"), "chart-tickets-data")
    twelve = table(reports(manager, "?months=12"), "chart-tickets-data")

    assert list(one) == [MONTH]
    assert list(twelve) == [f"{year}-{month:02d}" for year, month in [(2025, 12), *((2026, m) for m in range(1, 12))]]


def test_the_page_draws_svg_charts_without_inline_script_or_styles(world: World, manager: Console) -> None:
    html = reports(manager)

    assert html.count("<svg") == 4
    assert 'role="img"' in html and '<title id="chart-csat-title">' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert re.search(r"\son[a-z]+\s*=", html) is None
    assert re.search(r"\sstyle\s*=", html) is None  # the CSP allows no inline styles either


def test_the_page_follows_the_english_switch(world: World, manager: Console) -> None:
    manager.get("/console/lang/en")
    html = reports(manager)

    assert "Complaints by class" in html
    assert table(html, "chart-tickets-data")[MONTH]["Service"] == "1"


def test_an_empty_period_renders_with_empty_charts(app, world: World) -> None:  # type: ignore[no-untyped-def]
    later = NOW + timedelta(days=400)
    app.dependency_overrides[get_clock] = lambda: lambda: later
    with TestClient(app) as browser:
        html = reports(sign_in(browser, "manager"), "?months=2")

    assert table(html, "chart-tickets-data")["2027-12"]["合计"] == "0"
    assert "该期间暂无数据" in html  # the by-kind table has nothing to list


# -- the chart builder on its own ----------------------------------------------------------------------


def test_chart_labels_are_escaped_and_the_numbers_are_in_title_and_table() -> None:
    chart = Chart(id="c", title="<b>title</b>", x_label="x<", y_label="y&", categories=("<script>alert(1)</script>",),
                  series=(Series("<img src=x onerror=alert(1)>", (3.0,)),), kind="bar", integer=True)

    svg = str(chart.svg())

    assert "<script>" not in svg and "<img" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg and "&lt;img src=x onerror=alert(1)&gt;" in svg
    assert chart.rows() == [("<script>alert(1)</script>", ["3"])]  # the template escapes the table cells


@pytest.mark.parametrize("kind", ["line", "bar", "stacked"])
def test_a_chart_with_gaps_or_nothing_at_all_still_draws(kind: str) -> None:
    chart = Chart(id="c", title="t", x_label="x", y_label="y", categories=("a", "b", "c"), kind=kind,  # type: ignore[arg-type]
                  series=(Series("s", (None, 2.5, None)), Series("z", (None, None, None))))

    assert str(chart.svg()).endswith("</svg>")
    assert chart.rows()[0] == ("a", ["-", "-"])
