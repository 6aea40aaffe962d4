"""Reports for the dealer's managers: how owners rate the service, per dealer, advisor and month.

domain.md: thank positive feedback, analyse negative feedback and act on it. The survey report
shows where to look: surveys sent and answered, CSAT (1-5: the average and the share of 4-5) and
NPS (0-10: % promoters 9-10 minus % detractors 0-6), each over the surveys asked on that scale.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, func, literal, select, type_coerce
from sqlalchemy.orm import Session

from bot.models import UTC, Dealer, Outbox, OutboxStatus, Staff, Survey, SurveyResponse

NO_ADVISOR = "-"
ALL_ADVISORS = "(all)"
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
COUNTS = (
    "sent", "responses", "csat_responses", "csat_total", "csat_satisfied", "nps_responses", "promoters", "detractors",
)


class ReportError(ValueError):
    """A report asked for something that does not exist or cannot be read (a dealer, a month)."""


@dataclass(frozen=True, slots=True)
class SurveyLine:
    """The surveys of one dealer, advisor and month (the month the survey went out, dealer time)."""

    dealer: str  # slug
    advisor: str  # Staff.display_name, NO_ADVISOR when the repair order named none
    month: str  # YYYY-MM
    sent: int = 0
    responses: int = 0
    csat_responses: int = 0
    csat_total: int = 0  # the sum of the CSAT scores, for the average
    csat_satisfied: int = 0  # CSAT 4 or 5
    nps_responses: int = 0
    promoters: int = 0  # NPS 9-10
    detractors: int = 0  # NPS 0-6

    @property
    def response_rate(self) -> float | None:
        return 100 * self.responses / self.sent if self.sent else None

    @property
    def csat_average(self) -> float | None:
        return self.csat_total / self.csat_responses if self.csat_responses else None

    @property
    def csat_satisfied_share(self) -> float | None:
        return 100 * self.csat_satisfied / self.csat_responses if self.csat_responses else None

    @property
    def nps(self) -> float | None:
        if not self.nps_responses:
            return None
        return 100 * (self.promoters - self.detractors) / self.nps_responses

    def plus(self, other: SurveyLine) -> SurveyLine:
        """The two lines' counts added up, under this line's labels."""
        return replace(self, **{name: getattr(self, name) + getattr(other, name) for name in COUNTS})


def survey_report(session: Session, *, dealer: str | None = None, month: str | None = None) -> list[SurveyLine]:
    """Counts surveys sent and answered, CSAT and NPS per dealer, advisor and month."""
    dealers = session.scalars(select(Dealer).where(Dealer.slug == dealer) if dealer else select(Dealer).order_by(Dealer.slug)).all()
    if dealer and not dealers:
        raise ReportError(f"no dealer {dealer!r}")
    lines: list[SurveyLine] = []
    for row in dealers:
        lines += _dealer_lines(session, row, month)
    return lines


def _dealer_lines(session: Session, dealer: Dealer, month: str | None) -> list[SurveyLine]:
    zone = ZoneInfo(dealer.timezone)
    # When the survey went out: Survey.sent_at, else the time its outbox row (dedupe key
    # survey:<service record>) was sent, else the answer's time (an answer proves it went out).
    outbox = and_(
        Outbox.dealer_id == Survey.dealer_id,
        Outbox.dedupe_key == literal("survey:") + cast(Survey.service_record_id, String),
        Outbox.status.in_((OutboxStatus.sent, OutboxStatus.delivered)),
    )
    went_out = type_coerce(func.coalesce(Survey.sent_at, Outbox.sent_at, SurveyResponse.created_at), UTC())
    query = (
        select(
            Survey.kind,
            func.coalesce(func.nullif(Staff.display_name, ""), Staff.username).label("advisor"),
            went_out.label("went_out"),
            SurveyResponse.score,
        )
        .outerjoin(Staff, Staff.id == Survey.advisor_id)
        .outerjoin(SurveyResponse, SurveyResponse.survey_id == Survey.id)
        .outerjoin(Outbox, outbox)
        .where(Survey.dealer_id == dealer.id, went_out.is_not(None))
    )
    if month:
        start, end = _month_bounds(month, zone)
        query = query.where(went_out >= start, went_out < end)
    by_key: dict[tuple[str, str], SurveyLine] = {}
    for kind, advisor, moment, score in session.execute(query):
        label = moment.astimezone(zone).strftime("%Y-%m")
        name = advisor or NO_ADVISOR
        line = by_key.get((label, name)) or SurveyLine(dealer=dealer.slug, advisor=name, month=label)
        by_key[(label, name)] = line.plus(_counts(line, kind, score))
    return [by_key[key] for key in sorted(by_key)]


def _counts(line: SurveyLine, kind: str, score: int | None) -> SurveyLine:
    """One survey's contribution, under the line's labels."""
    one = SurveyLine(dealer=line.dealer, advisor=line.advisor, month=line.month, sent=1)
    if score is None:
        return one
    one = replace(one, responses=1)
    if kind == "nps":
        return replace(one, nps_responses=1, promoters=int(score >= 9), detractors=int(score <= 6))
    return replace(one, csat_responses=1, csat_total=score, csat_satisfied=int(score >= 4))


def _month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first moment and the next month's, in the dealer's timezone."""
    match = _MONTH.match(month)
    if match is None:
        raise ReportError(f"month {month!r} is not YYYY-MM")
    year, number = int(match[1]), int(match[2])
    start = date(year, number, 1)
    end = date(year + number // 12, number % 12 + 1, 1)
    return datetime(start.year, start.month, 1, tzinfo=zone), datetime(end.year, end.month, 1, tzinfo=zone)


def with_totals(lines: Iterable[SurveyLine]) -> list[SurveyLine]:
    """The lines with an "(all)" line after each dealer's month that has more than one advisor."""
    out: list[SurveyLine] = []
    group: list[SurveyLine] = []
    for line in [*lines, None]:
        if group and (line is None or (line.dealer, line.month) != (group[0].dealer, group[0].month)):
            out += group
            if len(group) > 1:
                total = SurveyLine(dealer=group[0].dealer, advisor=ALL_ADVISORS, month=group[0].month)
                for member in group:
                    total = total.plus(member)
                out.append(total)
            group = []
        if line is not None:
            group.append(line)
    return out


HEADERS = ("dealer", "month", "advisor", "sent", "responses", "rate", "CSAT avg", "CSAT 4-5", "NPS")


def format_surveys(lines: Iterable[SurveyLine]) -> str:
    """Renders the report as a plain text table, one line per dealer, month and advisor."""
    rows = [
        (
            line.dealer,
            line.month,
            line.advisor,
            str(line.sent),
            str(line.responses),
            _percent(line.response_rate),
            "-" if line.csat_average is None else f"{line.csat_average:.2f}",
            _percent(line.csat_satisfied_share),
            "-" if line.nps is None else f"{line.nps:+.0f}",
        )
        for line in with_totals(lines)
    ]
    if not rows:
        return "no surveys"
    widths = [max(_width(cell) for cell in column) for column in zip(HEADERS, *rows, strict=True)]
    numeric = [False, False, False] + [True] * (len(HEADERS) - 3)
    return "\n".join(
        "  ".join(_pad(cell, width, right) for cell, width, right in zip(row, widths, numeric, strict=True)).rstrip()
        for row in [HEADERS, *rows]
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _width(text: str) -> int:
    """Columns on a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * (width - _width(text))
    return space + text if right else text + space
