"""The numbers behind the console's reports page, one dealer at a time, per dealer-local month.

Each report is one grouped query: rows are put in month buckets by a CASE over the months' first
moments (computed in Python, in the dealer's timezone, then compared as UTC instants), so the
database counts and both SQLite and PostgreSQL run the same SQL. Every query filters by the
dealer id the caller passes, which is always the signed-in staff member's.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from bot.models import UTC as UTCType
from bot.models import (
    Appointment,
    Outbox,
    OutboxStatus,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
)
from bot.reports import ALL_ADVISORS, SurveyLine
from scheduler.rules import BOOKING_RULES

MAX_MONTHS = 24
# Reminder-to-booking conversion: a reminder counts as converted when the same owner booked an
# appointment at the same dealer (Appointment.created_at, whatever became of it later) at or after
# the moment it was sent and less than this many days later.
CONVERSION_DAYS = 14
# Only reminders that ask the owner to book (scheduler/rules.py BOOKING_RULES): an appointment
# reminder is about a booking already made, and birthday or insurance messages ask for none.
BOOKING_KINDS = tuple(sorted(f"reminder:{code}" for code in BOOKING_RULES))
SENT = (OutboxStatus.sent, OutboxStatus.delivered)
# The complaint classes of domain.md; a category outside them counts as "other". Roadside tickets are their own bar.
COMPLAINT_CLASSES = ("product_quality", "service", "other")
TICKET_CLASSES = (*COMPLAINT_CLASSES, "roadside")


@dataclass(frozen=True, slots=True)
class Months:
    """The last N months of a dealer's calendar: labels ("2026-11") and their first moments in UTC."""

    labels: tuple[str, ...]  # oldest first
    bounds: tuple[datetime, ...]  # len(labels) + 1: each month's start, then the end of the last

    @property
    def start(self) -> datetime:
        return self.bounds[0]

    @property
    def end(self) -> datetime:
        return self.bounds[-1]

    def within(self, moment: ColumnElement[Any]) -> ColumnElement[bool]:
        return and_(moment >= self.start, moment < self.end)

    def bucket(self, moment: ColumnElement[Any]) -> ColumnElement[int]:
        """The month's index (0 = the oldest) of a UTC time inside the period."""
        return case(*[(moment < end, index) for index, end in enumerate(self.bounds[1:])], else_=None)


def last_months(now: datetime, zone: str, count: int) -> Months:
    """The `count` months up to and including the dealer's current month."""
    local = now.astimezone(ZoneInfo(zone))
    current = local.year * 12 + local.month - 1
    firsts = [divmod(index, 12) for index in range(current - count + 1, current + 2)]
    starts = [datetime(year, month + 1, 1, tzinfo=ZoneInfo(zone)) for year, month in firsts]
    return Months(labels=tuple(f"{year:04d}-{month + 1:02d}" for year, month in firsts[:-1]),
                  bounds=tuple(start.astimezone(UTC) for start in starts))


# -- surveys -------------------------------------------------------------------------------------------


def survey_trend(session: Session, dealer_id: int, months: Months) -> list[SurveyLine]:
    """Surveys sent and answered, CSAT and NPS per month, all advisors together (one line per month)."""
    went_out = _survey_went_out()
    rows = (
        select(months.bucket(went_out).label("bucket"), Survey.kind.label("kind"), SurveyResponse.score.label("score"))
        .select_from(Survey)
        .outerjoin(SurveyResponse, SurveyResponse.survey_id == Survey.id)
        .outerjoin(Outbox, _survey_outbox())
        .where(Survey.dealer_id == dealer_id, months.within(went_out))
        .subquery()
    )
    score = rows.c.score
    query = select(
        rows.c.bucket, rows.c.kind, func.count(), func.count(score), func.coalesce(func.sum(score), 0),
        _count_if(score >= 4), _count_if(score >= 9), _count_if(score <= 6),
    ).group_by(rows.c.bucket, rows.c.kind)
    lines = [SurveyLine(dealer="", advisor=ALL_ADVISORS, month=label) for label in months.labels]
    for bucket, kind, sent, answered, total, satisfied, promoters, detractors in session.execute(query):
        if bucket is None:
            continue
        counts = SurveyLine(dealer="", advisor=ALL_ADVISORS, month=months.labels[bucket], sent=sent, responses=answered)
        # the same rule as bot/reports.py: "nps" surveys are 0-10, every other kind is CSAT 1-5
        if kind == "nps":
            counts = replace(counts, nps_responses=answered, promoters=promoters, detractors=detractors)
        else:
            counts = replace(counts, csat_responses=answered, csat_total=total, csat_satisfied=satisfied)
        lines[bucket] = lines[bucket].plus(counts)
    return lines


def _survey_outbox() -> ColumnElement[bool]:
    # the survey's outbox row, as in bot/reports.py: dedupe key survey:<service record>, sent
    return and_(
        Outbox.dealer_id == Survey.dealer_id,
        Outbox.dedupe_key == literal("survey:") + cast(Survey.service_record_id, String),
        Outbox.status.in_(SENT),
    )


def _survey_went_out() -> ColumnElement[datetime]:
    # bot/reports.py's definition of the survey's month: Survey.sent_at, else its outbox row's
    # sent_at, else the answer's time (an answer proves it went out)
    return type_coerce(func.coalesce(Survey.sent_at, Outbox.sent_at, SurveyResponse.created_at), UTCType())


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# -- reminder-to-booking conversion ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversion:
    """Booking reminders sent (by sent_at) and how many were followed by a booking within CONVERSION_DAYS."""

    label: str  # a month, or a reminder kind
    sent: int = 0
    booked: int = 0

    @property
    def rate(self) -> float | None:
        return 100 * self.booked / self.sent if self.sent else None

    def plus(self, sent: int, booked: int) -> Conversion:
        return Conversion(self.label, self.sent + sent, self.booked + booked)


@dataclass(frozen=True, slots=True)
class ConversionReport:
    by_month: list[Conversion]
    by_kind: list[Conversion]  # over the whole period, one per booking reminder kind that was sent

    @property
    def total(self) -> Conversion:
        return Conversion("", sum(c.sent for c in self.by_month), sum(c.booked for c in self.by_month))


def reminder_conversion(session: Session, dealer_id: int, months: Months) -> ConversionReport:
    """Reminders sent per month and kind, and how many the owner followed with a booking (see CONVERSION_DAYS)."""
    booked = exists().where(
        Appointment.dealer_id == Outbox.dealer_id,
        Appointment.customer_id == Outbox.customer_id,
        Appointment.created_at >= Outbox.sent_at,
        Appointment.created_at < plus_days(Outbox.sent_at, CONVERSION_DAYS),
    )
    rows = (
        select(months.bucket(Outbox.sent_at).label("bucket"), Outbox.kind.label("kind"),
               case((booked, 1), else_=0).label("booked"))
        .where(Outbox.dealer_id == dealer_id, Outbox.kind.in_(BOOKING_KINDS), Outbox.status.in_(SENT),
               months.within(Outbox.sent_at))
        .subquery()
    )
    query = select(rows.c.bucket, rows.c.kind, func.count(), func.sum(rows.c.booked)).group_by(rows.c.bucket, rows.c.kind)
    by_month = [Conversion(label) for label in months.labels]
    by_kind: dict[str, Conversion] = {}
    for bucket, kind, sent, converted in session.execute(query):
        if bucket is None:
            continue
        by_month[bucket] = by_month[bucket].plus(sent, int(converted or 0))
        by_kind[kind] = by_kind.get(kind, Conversion(kind)).plus(sent, int(converted or 0))
    return ConversionReport(by_month=by_month, by_kind=[by_kind[kind] for kind in sorted(by_kind)])


class plus_days(FunctionElement[datetime]):  # lower case: it reads like the SQL function it stands for
    """A stored UTC time plus whole days, in each database's own date arithmetic (SQL has no portable one)."""

    type = UTCType()
    name = "plus_days"
    inherit_cache = True

    def __init__(self, moment: ColumnElement[datetime], days: int) -> None:
        # the days are a constant of the code, never request input: written into the SQL as a number
        super().__init__(moment, literal_column(str(int(days)), Integer))


@compiles(plus_days)
def _plus_days_postgresql(element: plus_days, compiler: Any, **kw: Any) -> str:
    moment, days = element.clauses.clauses
    return f"({compiler.process(moment, **kw)} + make_interval(days => {compiler.process(days, **kw)}))"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: plus_days, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff" text; strftime gives the same shape
    # (to the millisecond), so the comparison stays a text comparison of like with like
    moment, days = element.clauses.clauses
    return f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(moment, **kw)}, '+{compiler.process(days, **kw)} days')"


# -- complaints by class -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketCounts:
    """Tickets opened (Ticket.created_at) per month: complaints by class, and roadside help."""

    months: tuple[str, ...]
    counts: dict[str, list[int]] = field(default_factory=dict)  # class -> one count per month

    def total(self, ticket_class: str) -> int:
        return sum(self.counts[ticket_class])

    def month_total(self, index: int) -> int:
        return sum(values[index] for values in self.counts.values())


def tickets_by_class(session: Session, dealer_id: int, months: Months) -> TicketCounts:
    """How many complaints of each class (and roadside tickets) were opened each month."""
    rows = (
        select(months.bucket(Ticket.created_at).label("bucket"), Ticket.kind.label("kind"), Ticket.category.label("category"))
        .where(Ticket.dealer_id == dealer_id, months.within(Ticket.created_at))
        .subquery()
    )
    query = select(rows.c.bucket, rows.c.kind, rows.c.category, func.count()).group_by(
        rows.c.bucket, rows.c.kind, rows.c.category)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(months.labels))
    for bucket, kind, category, count in session.execute(query):
        if bucket is not None:
            counts[ticket_class(kind, category)][bucket] += count
    return TicketCounts(months=months.labels, counts={name: counts[name] for name in TICKET_CLASSES})


def ticket_class(kind: TicketKind | str, category: str | None) -> str:
    """The bar a ticket counts in: roadside, else its complaint class (anything unknown is "other")."""
    if kind == TicketKind.roadside:
        return "roadside"
    return category if category in COMPLAINT_CLASSES else "other"


# -- everything the page shows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DealerReport:
    months: Months
    surveys: list[SurveyLine]
    conversion: ConversionReport
    tickets: TicketCounts


def dealer_report(session: Session, dealer_id: int, months: Months) -> DealerReport:
    """The reports page's figures: three grouped queries, each scoped to the dealer."""
    return DealerReport(
        months=months,
        surveys=survey_trend(session, dealer_id, months),
        conversion=reminder_conversion(session, dealer_id, months),
        tickets=tickets_by_class(session, dealer_id, months),
    )
