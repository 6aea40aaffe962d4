"""What one row of each file must hold, read into the columns of its table.

A reader returns a record (column name -> value, None where the cell was empty or the file has no
such column: None never overwrites what the database holds) or raises `BadRow` with every problem
the row has, so the reject report can say all of them at once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from bot.dms import values
from bot.dms.mapping import Mapping, field_of
from bot.dms.values import Invalid

Record = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    field: str  # the field name; the reject report shows the file's own header for it
    invalid: Invalid


class BadRow(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.invalid.reason for p in problems))
        self.problems = problems


class _Check:
    """Reads the cells of one row, collecting every problem instead of stopping at the first."""

    def __init__(self, kind: str, cells: dict[str, str]) -> None:
        self.kind = kind
        self.cells = cells
        self.problems: list[Problem] = []

    def read(self, name: str, reader: Callable[..., Any], *args: Any) -> Any:
        try:
            return reader(self.cells.get(name, ""), *args)
        except Invalid as exc:
            self.problems.append(Problem(name, exc))
            return None

    def text(self, name: str, limit: int) -> str | None:
        text = values.clean(self.cells.get(name, ""))
        if not text:
            return None
        try:
            values.too_long(text, limit)
        except Invalid as exc:
            self.problems.append(Problem(name, exc))
            return None
        return text

    def require(self, name: str, value: Any) -> None:
        if value is None and not any(p.field == name for p in self.problems):
            label = field_of(self.kind, name).label
            self.problems.append(Problem(name, Invalid("missing", f"{label}为空", f"{name} is empty")))

    def check(self, name: str, test: Callable[[], Any]) -> Any:
        try:
            return test()
        except Invalid as exc:
            self.problems.append(Problem(name, exc))
            return None

    def done(self, record: Record) -> Record:
        if self.problems:
            raise BadRow(self.problems)
        return record


def owner(cells: dict[str, str], *, today: date) -> Record:
    """A customer: customer_id and name required; phone, birthday, tier, language when given."""
    row = _Check("owners", cells)
    external_id = row.text("customer_id", 64)
    row.require("customer_id", external_id)
    name = row.text("name", 100)
    row.require("name", name)
    birthday = row.read("birthday", values.day)
    birthday = row.check("birthday", lambda: values.not_after(birthday, today, what_zh="生日", what_en="birthday"))
    return row.done({
        "external_id": external_id,
        "name": name,
        "phone": row.read("phone", values.phone),
        "birthday": birthday,
        "tier": row.read("tier", values.tier),
        "language": row.read("language", values.language),
    })


def vehicle(cells: dict[str, str], *, today: date) -> Record:
    """A car: plate and its owner's customer_id required; the rest when given."""
    row = _Check("vehicles", cells)
    plate = row.read("plate", values.plate)
    row.require("plate", plate)
    owner_id = row.text("customer_id", 64)
    row.require("customer_id", owner_id)
    delivered = row.read("delivery_date", values.day)
    delivered = row.check("delivery_date", lambda: values.not_after(delivered, today, what_zh="交车日期", what_en="delivery date"))
    last_service = row.read("last_service_date", values.day)
    last_service = row.check(
        "last_service_date", lambda: values.not_after(last_service, today, what_zh="上次保养日期", what_en="last service date")
    )
    return row.done({
        "plate": plate,
        "owner_external_id": owner_id,
        "vin": row.read("vin", values.vin),
        "model": row.text("model", 100),
        "delivery_date": delivered,
        "mileage": row.read("mileage", values.mileage),
        "insurance_due": row.read("insurance_due", values.day),
        "inspection_due": row.read("inspection_due", values.day),
        "warranty_until": row.read("warranty_until", values.day),
        "last_service_date": last_service,
        # a mileage means nothing without the date it was read on
        "last_service_mileage": row.read("last_service_mileage", values.mileage) if last_service else None,
    })


def service(cells: dict[str, str], *, today: date, zone: ZoneInfo, mapping: Mapping) -> Record:
    """A repair order: order_no, the car (plate or VIN), service type and the day it came in required."""
    row = _Check("services", cells)
    order_no = row.text("order_no", 40)
    row.require("order_no", order_no)
    plate = row.read("plate", values.plate)
    vin = row.read("vin", values.vin)
    if plate is None and vin is None and not any(p.field in ("plate", "vin") for p in row.problems):
        row.require("plate" if "plate" in cells else "vin", None)
    kind = row.text("service_type", 40)
    row.require("service_type", kind)
    opened = row.read("opened_on", values.day)
    closed = row.read("closed_at", values.moment, zone)
    if opened is None and closed is not None:
        opened = closed.astimezone(zone).date()  # some exports leave 进厂日期 empty for same-day orders
    opened = row.check("opened_on", lambda: values.not_after(opened, today, what_zh="进厂日期", what_en="opened_on"))
    row.require("opened_on", opened)
    if closed is not None:
        closed_on = closed.astimezone(zone).date()
        row.check("closed_at", lambda: values.not_after(closed_on, today, what_zh="结算时间", what_en="closed_at"))
    if opened is not None and closed is not None and closed.astimezone(zone).date() < opened:
        row.problems.append(Problem("closed_at", Invalid(
            "closed_before_opened",
            f"结算时间早于进厂日期：{closed.astimezone(zone):%Y-%m-%d %H:%M} < {opened.isoformat()}",
            f"closed before it opened: {closed.astimezone(zone):%Y-%m-%d %H:%M} < {opened.isoformat()}",
        )))
    return row.done({
        "order_no": order_no,
        "plate": plate,
        "vin": vin,
        "service_type": mapping.service_code(kind)[:40] if kind else None,
        "opened_on": opened,
        "closed_at": closed,
        "mileage": row.read("mileage", values.mileage),
        "amount_cents": row.read("amount", values.amount_cents),
        "advisor": row.text("advisor", 100),
        "summary": values.clean(cells.get("summary", "")) or None,
    })
