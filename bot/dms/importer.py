"""Loads owners, vehicles and repair orders from DMS exports: every row checked, batched upserts, idempotent.

Files are streamed and written a batch at a time with INSERT ... ON CONFLICT DO UPDATE on the
natural keys (customer by DMS id, vehicle by plate, repair order by number), so a 100,000-row
export never sits in memory and importing it twice changes nothing. Before each batch is written
the rows already stored are read back, which gives the inserted / updated / unchanged counts and
lets an empty cell keep what the database holds instead of erasing it.
"""
from __future__ import annotations

import time as clock
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, bindparam, select, update

from bot.db import Database
from bot.dms import rows as read
from bot.dms.mapping import KINDS, MAINTENANCE, Mapping
from bot.dms.rejects import RejectReport
from bot.dms.rows import BadRow, Problem, Record
from bot.dms.source import Row, Source
from bot.dms.values import Invalid, clean
from bot.dms.values import plate as read_plate
from bot.models import Customer, Dealer, ServiceRecord, Staff, Vehicle

BATCH = 1000  # rows per INSERT: 1000 x 12 columns stays under SQLite's 32,766 parameters

CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
VEHICLES: Table = Vehicle.__table__  # type: ignore[assignment]
SERVICES: Table = ServiceRecord.__table__  # type: ignore[assignment]

Advance = Callable[[int], None]
ProgressBar = Callable[[str, int], AbstractContextManager[Advance]]


@contextmanager
def no_progress(label: str, total: int) -> Iterator[Advance]:
    yield lambda done: None


@dataclass
class FileReport:
    file: str
    kind: str
    encoding: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    # repair orders only: cars whose last service (date, mileage) or odometer moved forward
    vehicles_updated: int = 0
    unknown_advisors: set[str] = field(default_factory=set)


@dataclass
class ImportReport:
    files: list[FileReport]
    dry_run: bool
    seconds: float

    @property
    def rows(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)


def import_files(
    *,
    db: Database,
    dealer_id: int,
    sources: Iterable[Source],
    mapping: Mapping,
    rejects: RejectReport,
    dry_run: bool = False,
    progress: ProgressBar = no_progress,
    now: datetime | None = None,
) -> ImportReport:
    """Imports owners, then vehicles, then repair orders; commits batch by batch, or nothing on a dry run."""
    started = clock.perf_counter()
    now = now or datetime.now(UTC)
    ordered = sorted(sources, key=lambda s: KINDS.index(s.kind))
    reports = []
    with db.engine.connect() as conn:
        run = _Run(conn, dealer_id, mapping, rejects, now, dry_run)
        try:
            for source in ordered:
                reports.append(run.load(source, progress))
        finally:
            conn.rollback()  # a dry run's writes, or a failed batch's
    return ImportReport(reports, dry_run, clock.perf_counter() - started)


@dataclass
class _Pending:
    row: Row
    record: Record


class _Run:
    """One import: the connection, the dealer, and what earlier files of this run refused."""

    def __init__(self, conn: Connection, dealer_id: int, mapping: Mapping, rejects: RejectReport, now: datetime, dry_run: bool):
        self.conn = conn
        self.dealer_id = dealer_id
        self.mapping = mapping
        self.rejects = rejects
        self.now = now
        self.dry_run = dry_run
        self.zone = ZoneInfo(conn.scalar(select(Dealer.timezone).where(Dealer.id == dealer_id)) or "Asia/Shanghai")
        self.today = now.astimezone(self.zone).date()
        # so a car whose owner was refused says so, rather than "no such owner"
        self.refused_owners: dict[str, tuple[str, int]] = {}
        self.refused_plates: dict[str, tuple[str, int]] = {}
        self._staff: dict[str, int] | None = None
        self._analyzed: dict[str, int] = {}

    def load(self, source: Source, progress: ProgressBar) -> FileReport:
        """Reads, checks and writes one file, batch by batch."""
        report = FileReport(source.name, source.kind, source.encoding)
        loader = _LOADERS[source.kind](self, source, report)
        seen: dict[Any, tuple[int, int]] = {}
        batch: list[_Pending] = []
        refused: list[tuple[Row, list[Problem]]] = []
        with progress(source.name, source.lines) as advance:
            done = 0

            def flush(upto: int) -> None:
                nonlocal done
                if batch:
                    refused.extend(loader.write(batch))
                    batch.clear()
                for row, problems in sorted(refused, key=lambda r: r[0].line):
                    self._refuse(source, row, problems, loader)
                refused.clear()
                if not self.dry_run:
                    self.conn.commit()
                self.analyze(loader.table, report.inserted)
                advance(max(upto - done, 0))
                done = upto

            for row in source.rows():
                report.read += 1
                if row.error is not None:
                    unreadable = Invalid("bad_csv", f"无法读取此行：{row.error}", f"unreadable line: {row.error}")
                    refused.append((row, [Problem("", unreadable)]))
                    continue
                try:
                    record = loader.read(row.values)
                except BadRow as bad:
                    refused.append((row, bad.problems))
                    continue
                key = loader.key(record)
                fingerprint = hash(tuple(record.items()))
                if key in seen:
                    first_line, first = seen[key]
                    if first == fingerprint:
                        # a combined export repeats the owner on each of their cars' lines
                        report.unchanged += 1
                    else:
                        refused.append((row, [loader.duplicate(key, first_line)]))
                    continue
                seen[key] = (row.line, fingerprint)
                batch.append(_Pending(row, record))
                if len(batch) >= BATCH:
                    flush(row.end_line)
            flush(source.lines)
            loader.finish()
            if not self.dry_run:
                self.conn.commit()
            self.analyze(loader.table, report.inserted, final=True)
        return report

    def analyze(self, table: Table, inserted: int, *, final: bool = False) -> None:
        """Refreshes PostgreSQL's statistics each time this run has doubled what it inserted into the table.

        psycopg prepares a statement after a few runs and PostgreSQL keeps one generic plan for
        it, made while the table looked small: a sequential scan per batch, which made a
        100,000-row import three times slower. ANALYZE replans them (as advised after bulk loads).
        """
        if self.conn.dialect.name != "postgresql":
            return
        last = self._analyzed.get(table.name, 0)
        if inserted > last and (final or inserted >= max(2 * last, BATCH)):
            self.conn.exec_driver_sql(f"ANALYZE {table.name}")
            if not self.dry_run:
                self.conn.commit()
            self._analyzed[table.name] = inserted

    def _refuse(self, source: Source, row: Row, problems: list[Problem], loader: _Loader) -> None:
        loader.report.rejected += 1
        loader.refused(row)
        self.rejects.add(
            file=source.name,
            line=row.line,
            columns=[source.label(p.field) if p.field else "" for p in problems],
            codes=[p.invalid.code for p in problems],
            reasons=[p.invalid.reason for p in problems],
            cells=row.cells,
        )

    def staff(self) -> dict[str, int]:
        """The dealer's staff by display name and by username, for 服务顾问."""
        if self._staff is None:
            self._staff = {}
            query = select(Staff.id, Staff.username, Staff.display_name).where(Staff.dealer_id == self.dealer_id)
            query = query.order_by(Staff.id)
            for staff_id, username, display_name in self.conn.execute(query):
                for name in (username, display_name):
                    if name and name.strip():
                        self._staff.setdefault(name.strip(), staff_id)
        return self._staff

    def upsert(self, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]], updates: tuple[str, ...]) -> None:
        """INSERT ... ON CONFLICT (keys) DO UPDATE the given columns, for a batch of rows."""
        if not rows:
            return
        if self.conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: statement.excluded[name] for name in updates}
        )
        self.conn.execute(statement, rows)


class _Loader:
    """Reads, keys and writes the rows of one kind of file."""

    table: Table

    def __init__(self, run: _Run, source: Source, report: FileReport) -> None:
        self.run = run
        self.source = source
        self.report = report

    def read(self, cells: dict[str, str]) -> Record:
        raise NotImplementedError

    def key(self, record: Record) -> Any:
        raise NotImplementedError

    def duplicate(self, key: Any, first_line: int) -> Problem:
        raise NotImplementedError

    def write(self, batch: list[_Pending]) -> list[tuple[Row, list[Problem]]]:
        """Upserts the batch; returns the rows refused for what the database says (an unknown owner)."""
        raise NotImplementedError

    def refused(self, row: Row) -> None:
        """Notes a refused row, so later files can say why its dependants are refused."""

    def finish(self) -> None:
        """Work after the last batch."""

    def count(self, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
        """Counts the row as inserted, updated or unchanged; True when it must be written."""
        if old is None:
            self.report.inserted += 1
            return True
        if all(old[name] == value for name, value in new.items()):
            self.report.unchanged += 1
            return False
        self.report.updated += 1
        return True


def _merge(record: Record, old: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # an empty cell (None) keeps what the database holds
    return {name: old[name] if record[name] is None else record[name] for name in names}


def _duplicate(label: str, key: Any, first_line: int) -> Invalid:
    return Invalid("duplicate", f"{label} {key} 与第{first_line}行重复但内容不同",
                   f"{label} {key} repeats line {first_line} with different values")


class _Owners(_Loader):
    table = CUSTOMERS
    COLUMNS = ("name", "phone", "tier", "birthday", "language")

    def read(self, cells: dict[str, str]) -> Record:
        return read.owner(cells, today=self.run.today)

    def key(self, record: Record) -> Any:
        return record["external_id"]

    def duplicate(self, key: Any, first_line: int) -> Problem:
        return Problem("customer_id", _duplicate(self.source.label("customer_id"), key, first_line))

    def refused(self, row: Row) -> None:
        if external_id := clean(row.values.get("customer_id")):
            self.run.refused_owners.setdefault(external_id, (self.source.name, row.line))

    def write(self, batch: list[_Pending]) -> list[tuple[Row, list[Problem]]]:
        run = self.run
        keys = [p.record["external_id"] for p in batch]
        query = select(CUSTOMERS.c.external_id, *(CUSTOMERS.c[name] for name in self.COLUMNS)).where(
            CUSTOMERS.c.dealer_id == run.dealer_id, CUSTOMERS.c.external_id.in_(keys)
        )
        stored = {row.external_id: row._asdict() for row in run.conn.execute(query)}
        writes = []
        for pending in batch:
            record = pending.record
            old = stored.get(record["external_id"])
            if old is None:
                new = {name: record[name] for name in self.COLUMNS} | {
                    "tier": record["tier"] or "C", "language": record["language"] or "zh"}
            else:
                new = _merge(record, old, self.COLUMNS)
            if self.count(old, new):
                writes.append({"dealer_id": run.dealer_id, "external_id": record["external_id"], **new,
                               "notes": "", "created_at": run.now})
        run.upsert(CUSTOMERS, ("dealer_id", "external_id"), writes, self.COLUMNS)
        return []


class _Vehicles(_Loader):
    table = VEHICLES
    PLAIN = ("vin", "model", "delivery_date", "insurance_due", "inspection_due", "warranty_until")
    COLUMNS = ("customer_id", *PLAIN, "mileage", "last_service_date", "last_service_mileage")

    def read(self, cells: dict[str, str]) -> Record:
        return read.vehicle(cells, today=self.run.today)

    def key(self, record: Record) -> Any:
        return record["plate"]

    def duplicate(self, key: Any, first_line: int) -> Problem:
        return Problem("plate", _duplicate(self.source.label("plate"), key, first_line))

    def refused(self, row: Row) -> None:
        try:
            plate = read_plate(row.values.get("plate", ""))
        except Invalid:
            return
        if plate:
            self.run.refused_plates.setdefault(plate, (self.source.name, row.line))

    def write(self, batch: list[_Pending]) -> list[tuple[Row, list[Problem]]]:
        run = self.run
        owner_keys = {p.record["owner_external_id"] for p in batch}
        owners = {external_id: owner_id for external_id, owner_id in run.conn.execute(
            select(CUSTOMERS.c.external_id, CUSTOMERS.c.id).where(
                CUSTOMERS.c.dealer_id == run.dealer_id, CUSTOMERS.c.external_id.in_(owner_keys)))}
        query = select(VEHICLES.c.plate, *(VEHICLES.c[name] for name in self.COLUMNS)).where(
            VEHICLES.c.dealer_id == run.dealer_id, VEHICLES.c.plate.in_([p.record["plate"] for p in batch])
        )
        stored = {row.plate: row._asdict() for row in run.conn.execute(query)}
        writes, refused = [], []
        for pending in batch:
            record = pending.record
            owner_id = owners.get(record["owner_external_id"])
            if owner_id is None:
                refused.append((pending.row, [self._no_owner(record["owner_external_id"])]))
                continue
            old = stored.get(record["plate"])
            new = self._merged(record, owner_id, old)
            if self.count(old, new):
                writes.append({"dealer_id": run.dealer_id, "plate": record["plate"], **new})
        run.upsert(VEHICLES, ("dealer_id", "plate"), writes, self.COLUMNS)
        return refused

    def _merged(self, record: Record, owner_id: int, old: dict[str, Any] | None) -> dict[str, Any]:
        if old is None:
            return {"customer_id": owner_id, **{name: record[name] for name in self.PLAIN}, "model": record["model"] or "",
                    "mileage": record["mileage"], "last_service_date": record["last_service_date"],
                    "last_service_mileage": record["last_service_mileage"]}
        new = {"customer_id": owner_id, **_merge(record, old, self.PLAIN)}
        # odometers only go up and a service clock only moves forward: a stale DMS master
        # record must not undo what the repair orders (or the bot) already know
        new["mileage"] = _highest(old["mileage"], record["mileage"])
        new["last_service_date"], new["last_service_mileage"] = _forward(
            (old["last_service_date"], old["last_service_mileage"]), (record["last_service_date"], record["last_service_mileage"])
        )
        return new

    def _no_owner(self, external_id: str) -> Problem:
        label = self.source.label("customer_id")
        if external_id in self.run.refused_owners:
            file, line = self.run.refused_owners[external_id]
            return Problem("customer_id", Invalid(
                "owner_refused", f"车主 {label} {external_id} 在 {file} 第{line}行被拒绝",
                f"its owner {label} {external_id} was refused ({file} line {line})"))
        return Problem("customer_id", Invalid(
            "unknown_owner", f"找不到车主：{label} {external_id} 不在车主文件或数据库中",
            f"no owner with {label} {external_id} in the owners file or the database"))


def _highest(old: int | None, new: int | None) -> int | None:
    return max((v for v in (old, new) if v is not None), default=None)


def _forward(old: tuple[date | None, int | None], new: tuple[date | None, int | None]) -> tuple[date | None, int | None]:
    """The later of two (last service date, its mileage) pairs; on the same day a known mileage wins."""
    if new[0] is None or (old[0] is not None and new[0] < old[0]):
        return old
    if old[0] == new[0] and new[1] is None:
        return old
    return new


class _Services(_Loader):
    table = SERVICES
    COLUMNS = ("vehicle_id", "customer_id", "service_type", "opened_on", "closed_at", "mileage", "amount_cents",
               "advisor_id", "summary")

    def __init__(self, run: _Run, source: Source, report: FileReport) -> None:
        super().__init__(run, source, report)
        self.touched: set[int] = set()

    def read(self, cells: dict[str, str]) -> Record:
        return read.service(cells, today=self.run.today, zone=self.run.zone, mapping=self.run.mapping)

    def key(self, record: Record) -> Any:
        return record["order_no"]

    def duplicate(self, key: Any, first_line: int) -> Problem:
        return Problem("order_no", _duplicate(self.source.label("order_no"), key, first_line))

    def write(self, batch: list[_Pending]) -> list[tuple[Row, list[Problem]]]:
        run = self.run
        cars = self._vehicles(batch)
        query = select(SERVICES.c.order_no, *(SERVICES.c[name] for name in self.COLUMNS)).where(
            SERVICES.c.dealer_id == run.dealer_id, SERVICES.c.order_no.in_([p.record["order_no"] for p in batch])
        )
        stored = {row.order_no: row._asdict() for row in run.conn.execute(query)}
        staff = run.staff()
        writes, refused = [], []
        for pending in batch:
            record = pending.record
            car = cars.get(record["plate"]) or cars.get(record["vin"])
            if car is None:
                refused.append((pending.row, [self._no_vehicle(record)]))
                continue
            vehicle_id, owner_id = car
            advisor_id = None
            if record["advisor"]:
                advisor_id = staff.get(record["advisor"])
                if advisor_id is None:
                    self.report.unknown_advisors.add(record["advisor"])
            old = stored.get(record["order_no"])
            fields = {**record, "vehicle_id": vehicle_id, "advisor_id": advisor_id}
            if old is None:
                new = {name: fields[name] for name in self.COLUMNS if name != "customer_id"} | {
                    "customer_id": owner_id, "amount_cents": record["amount_cents"] or 0, "summary": record["summary"] or ""}
            else:
                new = _merge(fields | {"customer_id": None}, old, self.COLUMNS)
                # an old order stays with the owner it was done for, unless it now names another car
                if old["vehicle_id"] != vehicle_id:
                    new["customer_id"] = owner_id
            self.touched.add(vehicle_id)
            if self.count(old, new):
                writes.append({"dealer_id": run.dealer_id, "order_no": record["order_no"], **new})
        run.upsert(SERVICES, ("dealer_id", "order_no"), writes, self.COLUMNS)
        return refused

    def _vehicles(self, batch: list[_Pending]) -> dict[str, tuple[int, int]]:
        """(vehicle id, owner id) by plate, and by VIN for orders whose plate is missing or unknown."""
        run = self.run
        plates = {p.record["plate"] for p in batch if p.record["plate"]}
        cars: dict[str, tuple[int, int]] = {
            plate: (vehicle_id, owner_id) for plate, vehicle_id, owner_id in run.conn.execute(
                select(VEHICLES.c.plate, VEHICLES.c.id, VEHICLES.c.customer_id).where(
                    VEHICLES.c.dealer_id == run.dealer_id, VEHICLES.c.plate.in_(plates)))
        }
        vins = {p.record["vin"] for p in batch if p.record["vin"] and p.record["plate"] not in cars}
        if vins:
            # the newest car on file with that VIN (a re-plated car keeps its VIN)
            for vin, vehicle_id, owner_id in run.conn.execute(
                select(VEHICLES.c.vin, VEHICLES.c.id, VEHICLES.c.customer_id).where(
                    VEHICLES.c.dealer_id == run.dealer_id, VEHICLES.c.vin.in_(vins)).order_by(VEHICLES.c.id)
            ):
                cars[vin] = (vehicle_id, owner_id)
        return cars

    def _no_vehicle(self, record: Record) -> Problem:
        plate, vin = record["plate"], record["vin"]
        field_name = "plate" if plate else "vin"
        label = self.source.label(field_name)
        if plate in self.run.refused_plates:
            file, line = self.run.refused_plates[plate]
            return Problem(field_name, Invalid(
                "vehicle_refused", f"车辆 {plate} 在 {file} 第{line}行被拒绝", f"its car {plate} was refused ({file} line {line})"))
        what = plate or vin
        return Problem(field_name, Invalid(
            "unknown_vehicle", f"找不到车辆：{label} {what} 不在车辆文件或数据库中",
            f"no car with {label} {what} in the vehicles file or the database"))

    def finish(self) -> None:
        """Moves each touched car's last service (newest maintenance order) and odometer forward."""
        touched = sorted(self.touched)
        for start in range(0, len(touched), BATCH):
            self.report.vehicles_updated += _bring_forward(self.run.conn, self.run.dealer_id, touched[start : start + BATCH])


def _bring_forward(conn: Connection, dealer_id: int, vehicle_ids: list[int]) -> int:
    """Sets last_service_date/mileage from the newest maintenance order and raises the mileage; returns cars changed."""
    newest: dict[int, tuple[date, datetime, int, int | None]] = {}
    highest: dict[int, int] = {}
    oldest = datetime.min.replace(tzinfo=UTC)
    orders = select(SERVICES.c.id, SERVICES.c.vehicle_id, SERVICES.c.service_type, SERVICES.c.opened_on, SERVICES.c.closed_at,
                    SERVICES.c.mileage).where(SERVICES.c.dealer_id == dealer_id, SERVICES.c.vehicle_id.in_(vehicle_ids))
    for order_id, vehicle_id, kind, opened_on, closed_at, mileage in conn.execute(orders):
        if mileage is not None:
            highest[vehicle_id] = max(highest.get(vehicle_id, 0), mileage)
        # only maintenance sets the service clock: a bodywork visit last week is not a service
        if kind in MAINTENANCE:
            candidate = (opened_on, closed_at or oldest, order_id, mileage)
            if vehicle_id not in newest or candidate[:3] > newest[vehicle_id][:3]:
                newest[vehicle_id] = candidate
    changes = []
    cars = select(VEHICLES.c.id, VEHICLES.c.last_service_date, VEHICLES.c.last_service_mileage, VEHICLES.c.mileage).where(
        VEHICLES.c.id.in_(vehicle_ids))
    for vehicle_id, last_date, last_mileage, mileage in conn.execute(cars):
        service = newest.get(vehicle_id)
        new_date, new_mileage = _forward((last_date, last_mileage), (service[0], service[3]) if service else (None, None))
        new_odometer = _highest(mileage, highest.get(vehicle_id))
        if (new_date, new_mileage, new_odometer) != (last_date, last_mileage, mileage):
            changes.append({"vehicle": vehicle_id, "last_date": new_date, "last_mileage": new_mileage, "odometer": new_odometer})
    if changes:
        conn.execute(
            update(VEHICLES).where(VEHICLES.c.id == bindparam("vehicle")).values(
                last_service_date=bindparam("last_date"), last_service_mileage=bindparam("last_mileage"),
                mileage=bindparam("odometer")),
            changes,
        )
    return len(changes)


_LOADERS: dict[str, type[_Loader]] = {"owners": _Owners, "vehicles": _Vehicles, "services": _Services}


def summary(report: ImportReport, rejects: RejectReport) -> list[str]:
    """The lines the command prints: per file read / inserted / updated / unchanged / rejected, then what to do."""
    width = max([len(f.file) for f in report.files] + [4])
    lines = [f"{'file':<{width}}  {'read':>9}  {'inserted':>9}  {'updated':>9}  {'unchanged':>9}  {'rejected':>9}"]
    for f in report.files:
        lines.append(f"{f.file:<{width}}  {f.read:>9,}  {f.inserted:>9,}  {f.updated:>9,}  {f.unchanged:>9,}  {f.rejected:>9,}"
                     f"  ({f.kind}, {f.encoding.upper()})")
    for f in report.files:
        if f.kind == "services":
            lines.append(f"{f.file}: {f.vehicles_updated:,} cars' last service or mileage moved forward")
        if f.unknown_advisors:
            names = sorted(f.unknown_advisors)
            more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
            lines.append(f"{f.file}: advisors not among the dealer's staff, left empty: {', '.join(names[:5])}{more}")
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    lines.append(f"{report.rows:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s)")
    if report.dry_run:
        lines.append("dry run (试运行): nothing was saved")
    if report.rejected:
        where = f"see {rejects.path}" if rejects.path is not None else "no report written"
        saved = "" if report.dry_run else "; the other rows are saved"
        lines.append(f"{report.rejected:,} rows rejected (被拒绝的行): {where}{saved}. "
                     "Fix them in the DMS or the file and run the same import again: rows already imported stay unchanged.")
    else:
        lines.append("no rows rejected (全部通过)")
    return lines
