"""`dealercare report surveys`: surveys sent and answered, CSAT and NPS per dealer, advisor and
month, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bot.cli import app
from bot.db import Database
from bot.models import (
    Customer,
    Dealer,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Staff,
    Survey,
    SurveyResponse,
    Vehicle,
)
from bot.reports import ReportError, SurveyLine, format_surveys, survey_report
from tests.factories import make_dealer

pytestmark = pytest.mark.db

NOV = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
# 2026-12-01 01:00 in Shanghai: a December survey for the dealer, though still November in UTC
LATE_NOV_UTC = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


class Seeder:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def staff(self, dealer: Dealer, username: str, name: str) -> Staff:
        staff = Staff(dealer_id=dealer.id, username=username, display_name=name, password_hash="x")
        self.session.add(staff)
        self.session.flush()
        return staff

    def survey(self, dealer: Dealer, advisor: Staff | None, kind: str, sent_at: datetime | None, score: int | None = None) -> Survey:
        self.count += 1
        customer = Customer(dealer_id=dealer.id, name=f"车主{self.count}")
        self.session.add(customer)
        self.session.flush()
        vehicle = Vehicle(dealer_id=dealer.id, customer_id=customer.id, plate=f"粤B{self.count:05d}")
        self.session.add(vehicle)
        self.session.flush()
        record = ServiceRecord(dealer_id=dealer.id, vehicle_id=vehicle.id, customer_id=customer.id, order_no=f"RO-{self.count}",
                               service_type="minor_service", opened_on=date(2026, 11, 1))
        self.session.add(record)
        self.session.flush()
        survey = Survey(dealer_id=dealer.id, customer_id=customer.id, service_record_id=record.id, kind=kind,
                        advisor_id=advisor.id if advisor else None, sent_at=sent_at)
        self.session.add(survey)
        self.session.flush()
        if score is not None:
            self.session.add(SurveyResponse(dealer_id=dealer.id, survey_id=survey.id, score=score, created_at=sent_at or NOV))
            self.session.flush()
        return survey


@pytest.fixture
def seeded(db: Database) -> None:
    with db.transaction() as session:
        seed = Seeder(session)
        gz, sz = make_dealer(session, slug="gz01"), make_dealer(session, slug="sz02")
        zhang, li = seed.staff(gz, "zhangwei", "张伟"), seed.staff(gz, "lina", "李娜")
        for score in (5, 4, 2, None):
            seed.survey(gz, zhang, "csat", NOV, score)
        for score in (10, 9, 7, 3, None):
            seed.survey(gz, li, "nps", NOV, score)
        seed.survey(gz, None, "csat", NOV)
        seed.survey(gz, zhang, "csat", LATE_NOV_UTC, 5)
        seed.survey(gz, zhang, "csat", None)  # planned, never sent: not counted
        seed.survey(sz, seed.staff(sz, "wang", "王强"), "csat", NOV, 3)


def report(db: Database, **filters: str) -> list[SurveyLine]:
    with db.sessions() as session:
        return survey_report(session, **filters)


def test_the_report_counts_sent_answered_csat_and_nps_per_dealer_advisor_and_month(db: Database, seeded: None) -> None:
    lines = {(line.dealer, line.month, line.advisor): line for line in report(db)}

    assert sorted(lines) == [
        ("gz01", "2026-11", "-"), ("gz01", "2026-11", "张伟"), ("gz01", "2026-11", "李娜"), ("gz01", "2026-12", "张伟"),
        ("sz02", "2026-11", "王强"),
    ]
    zhang = lines[("gz01", "2026-11", "张伟")]
    assert (zhang.sent, zhang.responses, zhang.response_rate) == (4, 3, 75.0)
    assert round(zhang.csat_average or 0, 2) == 3.67 and round(zhang.csat_satisfied_share or 0) == 67 and zhang.nps is None
    li = lines[("gz01", "2026-11", "李娜")]
    assert (li.sent, li.responses, li.promoters, li.detractors) == (5, 4, 2, 1)
    assert li.nps == 25.0 and li.csat_average is None  # (2 promoters - 1 detractor) / 4 answers
    nobody = lines[("gz01", "2026-11", "-")]
    assert (nobody.sent, nobody.responses, nobody.response_rate, nobody.csat_average) == (1, 0, 0.0, None)


def test_a_month_is_the_dealers_local_month(db: Database, seeded: None) -> None:
    [december] = report(db, dealer="gz01", month="2026-12")
    assert (december.advisor, december.sent, december.csat_average) == ("张伟", 1, 5.0)
    assert {line.month for line in report(db, dealer="gz01", month="2026-11")} == {"2026-11"}


def test_a_survey_whose_outbox_row_was_sent_counts_as_sent_then(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, slug="gz01")
        survey = Seeder(session).survey(dealer, None, "nps", None)
        session.add(Outbox(dealer_id=dealer.id, customer_id=survey.customer_id, dedupe_key=f"survey:{survey.service_record_id}",
                           kind="survey", body="请打分", status=OutboxStatus.delivered, sent_at=NOV))
    [line] = report(db)
    assert (line.month, line.sent, line.responses) == ("2026-11", 1, 0)


def test_an_unknown_dealer_or_month_is_refused(db: Database, seeded: None) -> None:
    with pytest.raises(ReportError, match="no dealer"):
        report(db, dealer="nowhere")
    with pytest.raises(ReportError, match="YYYY-MM"):
        report(db, month="2026-13")


def test_the_table_adds_a_line_for_all_advisors_of_a_dealers_month() -> None:
    lines = [
        SurveyLine("gz01", "张伟", "2026-11", sent=4, responses=3, csat_responses=3, csat_total=11, csat_satisfied=2),
        SurveyLine("gz01", "李娜", "2026-11", sent=5, responses=4, nps_responses=4, promoters=2, detractors=1),
    ]
    table = format_surveys(lines).splitlines()
    assert table[0].split() == ["dealer", "month", "advisor", "sent", "responses", "rate", "CSAT", "avg", "CSAT", "4-5", "NPS"]
    assert table[1].split() == ["gz01", "2026-11", "张伟", "4", "3", "75%", "3.67", "67%", "-"]
    assert table[2].split() == ["gz01", "2026-11", "李娜", "5", "4", "80%", "-", "-", "+25"]
    assert table[3].split() == ["gz01", "2026-11", "(all)", "9", "7", "78%", "3.67", "67%", "+25"]
    assert format_surveys([]) == "no surveys"


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", db.url)
    return lambda *args: CliRunner().invoke(app, ["report", "surveys", *args])


def test_the_command_prints_the_table_for_one_dealer_and_month(cli, seeded: None) -> None:  # type: ignore[no-untyped-def]
    result = cli("--dealer", "gz01", "--month", "2026-11")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("dealer") and "NPS" in lines[0]
    assert ["gz01", "2026-11", "李娜", "5", "4", "80%", "-", "-", "+25"] in [line.split() for line in lines]
    assert "sz02" not in result.output and "2026-12" not in result.output


def test_the_command_refuses_an_unknown_dealer(cli, seeded: None) -> None:  # type: ignore[no-untyped-def]
    result = cli("--dealer", "nowhere")
    assert result.exit_code == 1 and "no dealer 'nowhere'" in result.output
