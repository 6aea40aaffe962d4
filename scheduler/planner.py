"""The planner: finds the reminders and surveys that fall due and writes them as outbox rows.

`plan(db, now)` runs every rule of scheduler/rules.py for every dealer (or one). It is built for
a dealer group with half a million owners:

- each rule's candidates come from one set-based query that already filters by date windows
  (a car whose insurance expires 30 days after a day of the horizon, an owner whose birthday is
  tomorrow), streamed in batches: never a whole table into Python;
- the rule functions then decide each candidate exactly (the SQL is a slightly wider
  pre-filter), and the bodies are rendered in Python;
- rows go in batches of INSERT ... ON CONFLICT (dedupe_key) DO NOTHING, so running the planner
  twice, or on two machines at once, never writes a row twice; the statement's row count is
  the number of rows written. On PostgreSQL a second connection inserts one batch while Python
  renders the next (a holiday greets every owner: half a million rows).

Planner rows carry no channel and no address: the dispatcher's channel ladder picks them at
send time, and enforces opt-out, quiet hours and the weekly care cap there. The planner only
skips owners nobody can reach at all, so their rows do not pile up as cancellations.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, partial
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    Row,
    Select,
    String,
    Text,
    and_,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from bot.db import Database
from bot.dealer_config import DealerConfig
from bot.models import (
    Appointment,
    Channel,
    ChannelIdentity,
    Customer,
    Dealer,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Survey,
    Vehicle,
)
from scheduler import holidays, rules, texts
from scheduler.rules import (
    RULES,
    AppointmentFacts,
    CustomerFacts,
    Due,
    Horizon,
    ServiceRecordFacts,
    Today,
    VehicleFacts,
)

log = logging.getLogger(__name__)

BATCH = 2000  # candidates read, rendered and inserted at a time
WRITERS = 2  # PostgreSQL connections inserting batches (a holiday: half a million rows)


@dataclass
class PlanReport:
    rows_written: int = 0
    by_rule: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    seconds: float = 0.0
    # where the time went, by step (the three appointment rules share one)
    seconds_by_step: dict[str, float] = field(default_factory=dict)
    dealers_failed: list[int] = field(default_factory=list)  # logged; planned again next run


def plan(db: Database, now: datetime, *, dealer_id: int | None = None) -> PlanReport:
    """Writes the outbox rows of every reminder and survey due around `now`; returns the counts."""
    if now.tzinfo is None:
        raise ValueError("plan() needs an aware `now`")
    started = time.perf_counter()
    report = PlanReport()
    query = select(Dealer.id, Dealer.name, Dealer.address, Dealer.timezone, Dealer.config).order_by(Dealer.id)
    if dealer_id is not None:
        query = query.where(Dealer.id == dealer_id)
    with db.engine.connect() as conn:
        dealers = conn.execute(query).all()
        conn.rollback()
        for dealer in dealers:
            writer = _PostgresWriter(db.engine, dealer.id, now) if db.is_postgres else _SqliteWriter(conn, dealer.id, now)
            try:
                try:
                    _DealerRun(conn, writer, dealer, now, report, postgres=db.is_postgres).run()
                finally:
                    writer.close()
            except Exception:
                # one dealer's broken configuration or data must not stop every other dealer's reminders;
                # what it wrote stands (each row is whole), the next run tries it again
                log.exception("planning failed for a dealer", extra={"dealer_id": dealer.id})
                report.dealers_failed.append(dealer.id)
                if conn.in_transaction():
                    conn.rollback()
            for code, count in writer.written.items():
                report.by_rule[code] = report.by_rule.get(code, 0) + count
                report.rows_written += count
    report.seconds = time.perf_counter() - started
    log.debug(  # the caller (scheduler/service.py) logs the report
        "planned",
        extra={"rows": report.rows_written, "seconds": round(report.seconds, 2),
               "by_rule": {code: count for code, count in report.by_rule.items() if count}},
    )
    return report


# -- SQL that differs between the databases --------------------------------------------------------


class days_between(FunctionElement[int]):
    """later - earlier, in whole days (both dates)."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between, "postgresql")
def _days_between_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = element.clauses.clauses
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between)
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = element.clauses.clauses
    return f"CAST(julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)}) AS INTEGER)"


class month_day(FunctionElement[int]):
    """A date's month and day as one number, MMDD (1 June: 601)."""

    type = Integer()
    inherit_cache = True
    name = "month_day"


@compiles(month_day, "postgresql")
def _month_day_pg(element: month_day, compiler: Any, **kw: Any) -> str:
    # date_part: twice as fast as to_char over a table of owners
    day = compiler.process(element.clauses.clauses[0], **kw)
    return f"(date_part('month', {day}) * 100 + date_part('day', {day}))"


@compiles(month_day)
def _month_day_sqlite(element: month_day, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%m%d', {compiler.process(element.clauses.clauses[0], **kw)}) AS INTEGER)"


def _day(value: date) -> ColumnElement[date]:
    return bindparam(None, value, type_=Date())


def _within(due_column: Any, horizon: Horizon, offsets: Sequence[int]) -> ColumnElement[bool]:
    """The due day is one whose send day (due - offset) falls in the horizon."""
    if not offsets:
        return false()
    return or_(*(due_column.between(horizon.first + timedelta(days=o), horizon.last + timedelta(days=o)) for o in offsets))


# -- writing rows ----------------------------------------------------------------------------------

# One planned row before it is written: customer_id, dedupe_key, body, data, not_before.
Planned = tuple[int, str, str, dict[str, Any], datetime]

# PostgreSQL: a batch is one statement whose rows arrive as one JSON document. A multi-row
# VALUES list costs more to build and parse (ten parameters a row) than to run, and so does a
# text array of bodies (escaped one by one); json.dumps and the server's JSON parser are fast
# (jsonb_to_recordset: a fifth faster than json_to_recordset, which parses each row again).
_BATCH_ROWS = (
    func.jsonb_to_recordset(cast(bindparam("rows", type_=Text()), postgresql.JSONB()))
    .table_valued(
        column("customer_id", BigInteger()),
        column("dedupe_key", Text()),
        column("body", Text()),
        column("data", JSON()),
        column("not_before", DateTime(timezone=True)),
    )
    .render_derived(with_types=True)
)
INSERT_OUTBOX_PG = (
    postgresql.insert(Outbox)
    .from_select(
        ["dealer_id", "kind", "status", "attempts", "created_at", "customer_id", "dedupe_key", "body", "data", "not_before"],
        select(
            bindparam("dealer_id", type_=BigInteger()),
            bindparam("kind", type_=String()),
            literal(OutboxStatus.pending.value, type_=String()),
            literal(0, type_=Integer()),
            bindparam("now", type_=DateTime(timezone=True)),
            _BATCH_ROWS.c.customer_id,
            _BATCH_ROWS.c.dedupe_key,
            _BATCH_ROWS.c.body,
            _BATCH_ROWS.c.data,
            _BATCH_ROWS.c.not_before,
        ),
    )
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
)
INSERT_OUTBOX_SQLITE = sqlite.insert(Outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(Outbox.id)


# JIT compiling the large scans costs more than it saves; a planner transaction lost in a crash
# is planned again by the next run, so it need not wait for the WAL flush
_SESSION = "SET jit = off; SET synchronous_commit = off"


@contextmanager
def _transaction(conn: Connection) -> Iterator[None]:
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text(_SESSION.replace("SET ", "SET LOCAL ")))
        yield


def _postgres_insert(conn: Connection, dealer_id: int, now: datetime, code: str, rows: list[Planned]) -> int:
    document = json.dumps(
        [
            {"customer_id": customer_id, "dedupe_key": key, "body": body, "data": data, "not_before": not_before.isoformat()}
            for customer_id, key, body, data, not_before in rows
        ],
        ensure_ascii=False,
    )
    params = {"dealer_id": dealer_id, "kind": RULES[code].kind, "now": now, "rows": document}
    # one statement: its row count is the number of rows the conflict clause let in
    return conn.execute(INSERT_OUTBOX_PG, params, execution_options={"preserve_rowcount": True}).rowcount


class _SqliteWriter:
    """Writes each batch at once, on the run's own connection and transaction (one writer: SQLite)."""

    def __init__(self, conn: Connection, dealer_id: int, now: datetime) -> None:
        self.conn = conn
        self.dealer_id = dealer_id
        self.now = now
        self.written: dict[str, int] = {}

    def write(self, code: str, rows: list[Planned], conn: Connection | None = None) -> None:
        if not rows:
            return
        values = [
            {"dealer_id": self.dealer_id, "customer_id": customer_id, "dedupe_key": key, "kind": RULES[code].kind,
             "body": body, "data": data, "status": OutboxStatus.pending, "not_before": not_before, "attempts": 0,
             "created_at": self.now}
            for customer_id, key, body, data, not_before in rows
        ]
        written = len((conn or self.conn).execute(INSERT_OUTBOX_SQLITE, values).all())
        self.written[code] = self.written.get(code, 0) + written

    def close(self) -> None:
        pass


class _PostgresWriter:
    """Inserts batches from other connections on threads, while the run renders the next ones.

    The server's work (seven indexes and two foreign keys a row) is most of a holiday's cost:
    with two inserting connections it runs on both cores while this process renders. Each batch
    commits on its own: a row stands alone (its key makes it idempotent), so a run that stops
    halfway leaves whole rows for the next run to complete. Survey rows are written with
    `write(..., conn=)` on the run's connection instead, in the transaction that creates their
    Survey rows, so no survey row ever names a survey that was rolled back.
    """

    def __init__(self, engine: Engine, dealer_id: int, now: datetime, *, threads: int = WRITERS) -> None:
        self.engine = engine
        self.dealer_id = dealer_id
        self.now = now
        self.written: dict[str, int] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.batches: queue.Queue[tuple[str, list[Planned]] | None] = queue.Queue(maxsize=2 * threads)
        self.threads = [threading.Thread(target=self._run, name="planner-writer", daemon=True) for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def write(self, code: str, rows: list[Planned], conn: Connection | None = None) -> None:
        if not rows:
            return
        if conn is not None:
            self._count(code, _postgres_insert(conn, self.dealer_id, self.now, code, rows))
            return
        while True:  # never block for good on a writer that died
            if self.error is not None:
                raise RuntimeError("planner writer failed") from self.error
            try:
                self.batches.put((code, rows), timeout=1.0)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        for _ in self.threads:
            self.batches.put(None)  # one each: a thread ends at the first it takes
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise RuntimeError("planner writer failed") from self.error

    def _count(self, code: str, written: int) -> None:
        with self.lock:
            self.written[code] = self.written.get(code, 0) + written

    def _run(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text(_SESSION))
                conn.commit()
                try:
                    while (item := self.batches.get()) is not None:
                        code, rows = item
                        with conn.begin():
                            self._count(code, _postgres_insert(conn, self.dealer_id, self.now, code, rows))
                finally:
                    if not conn.invalidated:
                        conn.rollback()
                        conn.execute(text("RESET jit; RESET synchronous_commit"))  # the pool's next user gets defaults
                        conn.commit()
        except BaseException as exc:  # noqa: BLE001  (handed to the run, which raises it)
            self.error = exc
            while self.batches.get() is not None:  # keep taking batches until told to stop
                pass


Writer = _SqliteWriter | _PostgresWriter


# -- one dealer's run ------------------------------------------------------------------------------

VEHICLE_COLUMNS = (
    Vehicle.id, Vehicle.customer_id, Vehicle.plate, Vehicle.delivery_date, Vehicle.last_service_date,
    Vehicle.last_service_mileage, Vehicle.mileage, Vehicle.insurance_due, Vehicle.inspection_due, Vehicle.warranty_until,
    Customer.name, Customer.language,
)


class _DealerRun:
    def __init__(
        self, conn: Connection, writer: Writer, dealer: Row[Any], now: datetime, report: PlanReport, *, postgres: bool
    ) -> None:
        self.conn = conn
        self.writer = writer
        self.dealer_id: int = dealer.id
        self.now = now
        self.report = report
        self.postgres = postgres
        self.config = DealerConfig.model_validate(dealer.config or {})
        self.today = Today.of(now, dealer.timezone or "Asia/Shanghai", self.config)
        extra = self.config.extra
        self.dealer_name = {"zh": dealer.name, "en": extra.get("name_en") or dealer.name}
        self.address = {"zh": dealer.address, "en": extra.get("address_en") or dealer.address}
        self.services = {s.code: {"zh": s.name_zh, "en": s.name_en} for s in self.config.services}
        self._unreachable: set[int] | None = None
        self._templates: dict[tuple[str, str, str], str] = {}

    def run(self) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            *((code, partial(self._vehicle_rule, code)) for code in rules.VEHICLE_RULES),
            ("appointments", self._appointments),
            ("survey", self._survey),
            *((code, partial(self._customer_rule, code)) for code in rules.CUSTOMER_RULES),
        ]
        for name, step in steps:
            started = time.perf_counter()
            step()
            spent = self.report.seconds_by_step
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

    # -- shared ------------------------------------------------------------------------------------

    def enabled(self, code: str) -> bool:
        return self.today.rule(code).enabled

    @property
    def unreachable(self) -> set[int]:
        """The owners with no address left: every identity opted out or unreachable, and no phone."""
        if self._unreachable is None:
            usable = exists().where(
                ChannelIdentity.customer_id == Customer.id,
                ChannelIdentity.channel.in_([Channel.wechat, Channel.sms]),
                ChannelIdentity.opted_out.is_(False),
                ChannelIdentity.unreachable.is_(False),
            )
            phone_blocked = exists().where(
                ChannelIdentity.customer_id == Customer.id,
                ChannelIdentity.channel == Channel.sms,
                ChannelIdentity.address == Customer.phone,
                or_(ChannelIdentity.opted_out.is_(True), ChannelIdentity.unreachable.is_(True)),
            )
            query = select(Customer.id).where(
                Customer.dealer_id == self.dealer_id,
                ~usable,
                or_(Customer.phone.is_(None), Customer.phone == "", phone_blocked),
            )
            self._unreachable = set(self.conn.execute(query).scalars())
        return self._unreachable

    def _stream(self, query: Select[Any]) -> Iterator[Sequence[Row[Any]]]:
        # per statement: Connection.execution_options() would stream every later statement too
        result = self.conn.execute(query, execution_options={"yield_per": BATCH})
        yield from result.partitions()

    def _planned(self, due: Due, customer_id: int, lang: str, key: str, params: dict[str, Any], data: dict[str, Any]) -> Planned:
        """Renders one row: our text (or the dealer's) in the owner's language, and its data."""
        params.setdefault("dealer", self.dealer_name[lang])
        params.setdefault("address", self.address[lang])
        template = self._templates.get((due.rule, key, lang))
        if template is None:
            template = texts.choose(key, lang, self.today.rule(due.rule).template(lang))
            self._templates[(due.rule, key, lang)] = template
        data = {"rule": due.rule, "lang": lang, "due": due.due.isoformat(), **data}
        return customer_id, due.dedupe_key, texts.fill(template, params), data, due.not_before

    def _service(self, code: str) -> str | None:
        """The booking service the rule proposes, if the dealer offers it (else the flow asks)."""
        return next((choice for choice in RULES[code].services if choice in self.services), None)

    def _service_name(self, code: str | None, lang: str, default_key: str = "default_service") -> str:
        names = self.services.get(code or "")
        return names[lang] if names else texts.text(default_key, lang)

    def _name(self, name: str | None, lang: str) -> str:
        return name or texts.text("default_name", lang)

    # -- vehicles ----------------------------------------------------------------------------------

    def _vehicle_window(self, code: str) -> ColumnElement[bool]:
        horizon = self.today.horizon(code)
        offsets = self.today.rule(code).offsets_days
        if code == "maintenance":
            return and_(
                Vehicle.last_service_date.is_not(None),
                self._time_or_distance(
                    horizon, offsets, start=Vehicle.last_service_date, days=self.config.maintenance_interval_days,
                    km=self.config.maintenance_interval_km, reading=Vehicle.last_service_mileage,
                    read_on=Vehicle.last_service_date, since=Vehicle.last_service_date,
                ),
            )
        if code == "first_service":
            return and_(
                Vehicle.last_service_date.is_(None),
                Vehicle.delivery_date.is_not(None),
                self._time_or_distance(
                    horizon, offsets, start=Vehicle.delivery_date, days=self.config.first_service_days,
                    km=self.config.first_service_km, reading=Vehicle.mileage, read_on=_day(self.today.day),
                    since=Vehicle.delivery_date,
                ),
            )
        due_column = {
            "inspection": Vehicle.inspection_due,
            "insurance": Vehicle.insurance_due,
            "warranty": Vehicle.warranty_until,
            "delivery_callback": Vehicle.delivery_date,
        }[code]
        return _within(due_column, horizon, offsets)

    @staticmethod
    def _time_or_distance(
        horizon: Horizon, offsets: Sequence[int], *, start: Any, days: int, km: int, reading: Any, read_on: Any, since: Any
    ) -> ColumnElement[bool]:
        """Pre-filters rules.maintenance_due / first_service_due: due by time, or by distance.

        The due day is the earlier of the two, so a car is a candidate when either lands in the
        window; the distance estimate is the same integer arithmetic as rules.distance_due, with
        a day of slack on each side for the databases' date arithmetic.
        """
        if not offsets:
            return false()
        first = horizon.first + timedelta(days=min(offsets) - 1)
        last = horizon.last + timedelta(days=max(offsets) + 1)
        by_time = start.between(first - timedelta(days=days), last - timedelta(days=days))
        by_distance = and_(
            reading > 0,
            Vehicle.delivery_date < read_on,
            (bindparam(None, km, type_=BigInteger()) * days_between(read_on, Vehicle.delivery_date) // reading).between(
                days_between(_day(first), since), days_between(_day(last), since)
            ),
        )
        return or_(by_time, by_distance)

    def _vehicle_rule(self, code: str) -> None:
        if not self.enabled(code):
            return
        rule_function = rules.VEHICLE_RULES[code]
        query = (
            select(*VEHICLE_COLUMNS)
            .join(Customer, Customer.id == Vehicle.customer_id)
            .where(Vehicle.dealer_id == self.dealer_id, self._vehicle_window(code))
        )
        service = self._service(code)
        key = f"reminder.{code}"
        with _transaction(self.conn):
            unreachable = self.unreachable
            for batch in self._stream(query):
                rows = []
                for r in batch:
                    if r.customer_id in unreachable:
                        continue
                    facts = VehicleFacts(
                        r.id, r.delivery_date, r.last_service_date, r.last_service_mileage, r.mileage,
                        r.insurance_due, r.inspection_due, r.warranty_until,
                    )
                    for due in rule_function(facts, self.today):
                        lang = texts.language(r.language)
                        params = {"name": self._name(r.name, lang), "plate": r.plate,
                                  "date": texts.format_date(due.due, lang), "service": self._service_name(service, lang)}
                        data: dict[str, Any] = {"vehicle_id": r.id, "plate": r.plate}
                        if service:
                            data["service"] = service
                        if code == "insurance":
                            data["offset_days"] = due.offset
                        rows.append(self._planned(due, r.customer_id, lang, key, params, data))
                self.writer.write(code, rows)

    # -- appointments ------------------------------------------------------------------------------

    def _appointments(self) -> None:
        codes = [code for code in rules.APPOINTMENT_RULES if self.enabled(code)]
        if not codes:
            return
        # every appointment a rule could speak of: from the catch-up days back to the day after tomorrow
        start = self.today.time.start_of(self.today.day - timedelta(days=rules.CATCH_UP_DAYS + 1))
        end = self.today.time.start_of(self.today.day + timedelta(days=rules.AHEAD_DAYS + 2))
        query = (
            select(
                Appointment.id, Appointment.customer_id, Appointment.vehicle_id, Appointment.service_type,
                Appointment.starts_at, Appointment.status, Appointment.created_at,
                Vehicle.plate, Customer.name, Customer.language,
            )
            .join(Customer, Customer.id == Appointment.customer_id)
            .outerjoin(Vehicle, Vehicle.id == Appointment.vehicle_id)
            .where(
                Appointment.dealer_id == self.dealer_id,
                Appointment.status.in_([*rules.ACTIVE_APPOINTMENT, "no_show"]),
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
        )
        with _transaction(self.conn):
            unreachable = self.unreachable
            for batch in self._stream(query):
                rows: dict[str, list[Planned]] = {code: [] for code in codes}
                for r in batch:
                    if r.customer_id in unreachable:
                        continue
                    facts = AppointmentFacts(r.id, r.starts_at, r.status, r.created_at)
                    for code in codes:
                        rows[code] += [self._appointment_row(due, r) for due in rules.APPOINTMENT_RULES[code](facts, self.today)]
                for code, planned in rows.items():
                    self.writer.write(code, planned)

    def _appointment_row(self, due: Due, r: Row[Any]) -> Planned:
        lang = texts.language(r.language)
        local = self.today.time.local(r.starts_at)
        params = {"name": self._name(r.name, lang), "date": texts.format_date(local.date(), lang), "time": f"{local:%H:%M}",
                  "service": self._service_name(r.service_type, lang), "plate": r.plate or ""}
        data: dict[str, Any] = {"appointment_id": r.id, "appointment_starts_at": r.starts_at.isoformat(),
                                "service": r.service_type}
        if r.vehicle_id is not None:
            data |= {"vehicle_id": r.vehicle_id, "plate": r.plate}
        return self._planned(due, r.customer_id, lang, f"reminder.{due.rule}", params, data)

    # -- surveys -----------------------------------------------------------------------------------

    def _survey(self) -> None:
        if not self.enabled("survey"):
            return
        delay = timedelta(hours=self.config.survey_delay_hours)
        # closed recently enough that the send time (closed + delay, out of the quiet hours) is in the horizon
        first = self.now - delay - timedelta(days=RULES["survey"].catch_up_days + 1)
        last = self.today.time.start_of(self.today.horizon("survey").last + timedelta(days=1)) - delay
        query = (
            select(
                ServiceRecord.id, ServiceRecord.customer_id, ServiceRecord.vehicle_id, ServiceRecord.service_type,
                ServiceRecord.closed_at, ServiceRecord.advisor_id, Vehicle.plate, Customer.name, Customer.language,
                Survey.id.label("survey_id"), Survey.kind.label("survey_kind"),
            )
            .join(Customer, Customer.id == ServiceRecord.customer_id)
            .join(Vehicle, Vehicle.id == ServiceRecord.vehicle_id)
            .outerjoin(Survey, and_(Survey.dealer_id == ServiceRecord.dealer_id, Survey.service_record_id == ServiceRecord.id))
            .where(ServiceRecord.dealer_id == self.dealer_id, ServiceRecord.closed_at.between(first, last))
        )
        with _transaction(self.conn):
            unreachable = self.unreachable
            for batch in self._stream(query):
                found = [
                    (r, due)
                    for r in batch
                    if r.customer_id not in unreachable
                    for due in rules.survey(ServiceRecordFacts(r.id, r.closed_at), self.today)
                ]
                surveys = self._surveys_for([r for r, _ in found if r.survey_id is None])
                rows = []
                for r, due in found:
                    survey_id, scale = (r.survey_id, r.survey_kind) if r.survey_id is not None else surveys[r.id]
                    lang = texts.language(r.language)
                    params = {"name": self._name(r.name, lang), "plate": r.plate, "date": texts.format_date(due.due, lang),
                              "service": self._service_name(r.service_type, lang, "default_survey_service")}
                    data = {"survey_id": survey_id, "scale": scale, "service_record_id": r.id, "vehicle_id": r.vehicle_id,
                            "plate": r.plate, "service": r.service_type}
                    rows.append(self._planned(due, r.customer_id, lang, f"survey.{scale}", params, data))
                # in this transaction, with the Survey rows it names
                self.writer.write("survey", rows, conn=self.conn)

    def _surveys_for(self, records: list[Row[Any]]) -> dict[int, tuple[int, str]]:
        """Creates the Survey row of each repair order (one per order); returns id and scale by order."""
        if not records:
            return {}
        kind = self.config.survey_kind
        ids = [r.id for r in records]
        # set-based: the rows come from the repair orders themselves, one statement a batch
        chosen = (
            ServiceRecord.id == func.any(bindparam("ids", ids, type_=postgresql.ARRAY(BigInteger())))
            if self.postgres
            else ServiceRecord.id.in_(ids)
        )
        source = select(
            ServiceRecord.dealer_id, ServiceRecord.customer_id, ServiceRecord.id, literal(kind, type_=String()),
            ServiceRecord.advisor_id, literal(self.now, type_=Survey.created_at.type),
        ).where(ServiceRecord.dealer_id == self.dealer_id, chosen)
        insert = (postgresql.insert if self.postgres else sqlite.insert)(Survey)
        statement = (
            insert.from_select(["dealer_id", "customer_id", "service_record_id", "kind", "advisor_id", "created_at"], source)
            .on_conflict_do_nothing(index_elements=["dealer_id", "service_record_id"])
            .returning(Survey.id, Survey.service_record_id)
        )
        made = {row.service_record_id: (row.id, kind) for row in self.conn.execute(statement)}
        if missing := [i for i in ids if i not in made]:  # another planner made them meanwhile
            query = select(Survey.id, Survey.service_record_id, Survey.kind).where(
                Survey.dealer_id == self.dealer_id, Survey.service_record_id.in_(missing)
            )
            made |= {row.service_record_id: (row.id, row.kind) for row in self.conn.execute(query)}
        return made

    # -- owners ------------------------------------------------------------------------------------

    def _customer_window(self, code: str) -> ColumnElement[bool] | None:
        horizon = self.today.horizon(code)
        if code == "birthday":
            offsets = self.today.rule(code).offsets_days
            days = {d + timedelta(days=o) for d in horizon.days() for o in offsets}
            month_days = {d.month * 100 + d.day for d in days}
            if any(d.month == 2 and d.day == 28 and not _leap(d.year) for d in days):
                month_days.add(229)  # greeted on the 28th outside leap years
            return and_(Customer.birthday.is_not(None), month_day(Customer.birthday).in_(sorted(month_days)))
        if code == "holiday":
            return None if not self.today.holidays else Customer.id.is_not(None)
        first = rules.epoch_day(horizon.first)
        tiers = [
            and_(Customer.tier == tier, ((Customer.id + first) % cadence).in_(rules.tier_care_residues(cadence, horizon)))
            for tier, cadence in self.config.tier_cadence_days.items()
            if cadence > 0
        ]
        return or_(*tiers) if tiers else None

    def _customer_rule(self, code: str) -> None:
        if not self.enabled(code):
            return
        window = self._customer_window(code)
        if window is None:
            return
        rule_function = rules.CUSTOMER_RULES[code]
        query = select(Customer.id, Customer.name, Customer.language, Customer.birthday, Customer.tier).where(
            Customer.dealer_id == self.dealer_id, window
        )
        default_names = {lang: texts.text("default_name", lang) for lang in texts.LANGUAGES}
        with _transaction(self.conn):
            unreachable = self.unreachable
            for batch in self._stream(query):
                rows = []
                for customer_id, name, language, birthday, tier in batch:
                    if customer_id in unreachable:
                        continue
                    for due in rule_function(CustomerFacts(customer_id, birthday, tier or "C"), self.today):
                        lang = texts.language(language)
                        params: dict[str, Any] = {"name": name or default_names[lang]}
                        data: dict[str, Any] = {}
                        key = f"reminder.{code}"
                        if code == "holiday":
                            holiday = due.holiday or ""
                            data["holiday"] = params["holiday"] = holiday
                            key = f"holiday.{holiday}" if holiday in holidays.KNOWN else "holiday.custom"
                        rows.append(self._planned(due, customer_id, lang, key, params, data))
                self.writer.write(code, rows)


@cache
def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
