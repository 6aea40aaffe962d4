"""Console page: the audit log of every staff action (who, what, when, on which owner), for managers and admins.

`GET /console/audit` lists the dealer's rows newest first (by id: rows are written as the action
happens), 50 a page, paged by keyset (`?before=<id>` older, `?after=<id>` newer) so a deep page costs
the same as the first. Filters: staff member, action, owner (customer id), dealer-local date range.
`GET /console/audit.csv` (admins only) exports the same filtered rows; the export is itself audited.

Every query filters by the session's dealer; staff and owner names are joined on the same dealer too,
so even a mis-written row never shows another dealer's names. Targets and data are owner- or
attacker-supplied text (a failed sign-in's username): Jinja escapes them, the CSV defuses formulas.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from bot.console import text
from bot.console.auth import Clock, CurrentStaff, require_role
from bot.console.rendering import local, render
from bot.console.scope import audit, page_router
from bot.db import Database
from bot.models import AuditLog, Customer, Staff, StaffRole

router = page_router()
ManagerDep = Annotated[CurrentStaff, Depends(require_role(StaffRole.manager, StaffRole.admin))]
AdminDep = Annotated[CurrentStaff, Depends(require_role(StaffRole.admin))]

PAGE_SIZE = 50
EXPORT_BATCH = 1000
EXPORT = "audit.export"
MAX_ID = 2**63 - 1  # BIGINT: a larger number would be a database error, not an empty page
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets may run as a formula

text.register({
    "zh": {
        "audit_title": "审计日志",
        "audit_when": "时间",
        "audit_who": "操作人",
        "audit_what": "操作",
        "audit_owner": "车主",
        "audit_target": "对象",
        "audit_data": "详情",
        "audit_owner_id": "车主编号",
        "audit_from": "开始日期",
        "audit_to": "结束日期",
        "audit_all": "全部",
        "audit_filter": "筛选",
        "audit_reset": "清除筛选",
        "audit_older": "更早的记录 →",
        "audit_newer": "← 较新的记录",
        "audit_newest": "回到最新",
        "audit_pages": "翻页",
        "audit_empty": "没有符合条件的记录。",
        "audit_export": "导出 CSV",
        "audit_nobody": "（无）",
        "audit_action_console.login": "登录",
        "audit_action_console.login_failed": "登录失败",
        "audit_action_console.logout": "退出登录",
        "audit_action_audit.export": "导出审计日志",
        "audit_action_conversation.take": "接管对话",
        "audit_action_conversation.assign": "转给同事",
        "audit_action_conversation.reply": "回复车主",
        "audit_action_conversation.note": "添加内部备注",
        "audit_action_conversation.release": "交回机器人",
        "audit_action_ticket.status": "变更工单状态",
        "audit_action_ticket.resolve": "解决工单",
        "audit_action_ticket.close": "关闭工单",
        "audit_action_ticket.assign": "分配工单",
        "audit_action_ticket.classify": "修改工单分类",
        "audit_action_appointment.confirm": "确认预约",
        "audit_action_appointment.reschedule": "改期预约",
        "audit_action_appointment.cancel": "取消预约",
        "audit_action_owner.view": "查看车主资料",
        "audit_action_owner.notes": "修改车主备注",
        "audit_action_owner.tier": "修改客户等级",
    },
    "en": {
        "audit_title": "Audit log",
        "audit_when": "When",
        "audit_who": "Who",
        "audit_what": "Action",
        "audit_owner": "Owner",
        "audit_target": "Target",
        "audit_data": "Details",
        "audit_owner_id": "Owner ID",
        "audit_from": "From",
        "audit_to": "To",
        "audit_all": "All",
        "audit_filter": "Filter",
        "audit_reset": "Clear filters",
        "audit_older": "Older →",
        "audit_newer": "← Newer",
        "audit_newest": "Newest",
        "audit_pages": "Pages",
        "audit_empty": "No matching entries.",
        "audit_export": "Export CSV",
        "audit_nobody": "(none)",
        "audit_action_console.login": "Signed in",
        "audit_action_console.login_failed": "Sign-in failed",
        "audit_action_console.logout": "Signed out",
        "audit_action_audit.export": "Exported the audit log",
        "audit_action_conversation.take": "Took over a conversation",
        "audit_action_conversation.assign": "Assigned a conversation",
        "audit_action_conversation.reply": "Replied to the owner",
        "audit_action_conversation.note": "Added an internal note",
        "audit_action_conversation.release": "Gave a conversation back to the bot",
        "audit_action_ticket.status": "Changed a ticket's status",
        "audit_action_ticket.resolve": "Resolved a ticket",
        "audit_action_ticket.close": "Closed a ticket",
        "audit_action_ticket.assign": "Assigned a ticket",
        "audit_action_ticket.classify": "Reclassified a ticket",
        "audit_action_appointment.confirm": "Confirmed an appointment",
        "audit_action_appointment.reschedule": "Rescheduled an appointment",
        "audit_action_appointment.cancel": "Cancelled an appointment",
        "audit_action_owner.view": "Viewed an owner",
        "audit_action_owner.notes": "Edited an owner's notes",
        "audit_action_owner.tier": "Changed an owner's tier",
    },
})


def action_label(action: str, lang: str) -> str:
    """The action in the viewer's words when a module registered `audit_action_<action>`, else as written."""
    return text.TEXT[lang].get(f"audit_action_{action}", action)


# -- the query string ------------------------------------------------------------------------------------


class AuditQuery(BaseModel):
    """The filters and the page cursor. Blank fields (an untouched filter form) mean "any"; junk is a 422."""

    model_config = ConfigDict(extra="ignore")

    staff_id: int | None = Field(None, ge=1, le=MAX_ID)
    action: str | None = Field(None, max_length=64)
    customer_id: int | None = Field(None, ge=1, le=MAX_ID)
    date_from: date | None = Field(None, ge=FIRST_DAY, le=LAST_DAY)
    date_to: date | None = Field(None, ge=FIRST_DAY, le=LAST_DAY)
    before: int | None = Field(None, ge=1, le=MAX_ID)
    after: int | None = Field(None, ge=0, le=MAX_ID)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    def filters(self) -> dict[str, str]:
        """The filters alone (no cursor), as query-string values: kept by the pager's links."""
        values = self.model_dump(exclude={"before", "after"}, exclude_none=True)
        return {name: str(value) for name, value in values.items()}

    def url(self, path: str = "/console/audit", **cursor: int) -> str:
        query = urlencode({**self.filters(), **{name: str(value) for name, value in cursor.items()}})
        return f"{path}?{query}" if query else path


AuditQueryDep = Annotated[AuditQuery, Query()]


def conditions(dealer_id: int, query: AuditQuery, zone: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses: always the dealer, then each filter given. Dates are the dealer's local days."""
    where: list[ColumnElement[bool]] = [AuditLog.dealer_id == dealer_id]
    if query.staff_id is not None:
        where.append(AuditLog.staff_id == query.staff_id)
    if query.action:
        where.append(AuditLog.action == query.action)
    if query.customer_id is not None:
        where.append(AuditLog.customer_id == query.customer_id)
    if query.date_from is not None:
        where.append(AuditLog.created_at >= _local_midnight(query.date_from, zone))
    if query.date_to is not None:  # inclusive: up to the next day's midnight
        where.append(AuditLog.created_at < _local_midnight(query.date_to + timedelta(days=1), zone))
    return where


def _local_midnight(day: date, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))


# -- reading the log -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit row as the page shows it."""

    id: int
    created_at: datetime
    staff_id: int | None
    staff_name: str | None
    action: str
    customer_id: int | None
    owner_name: str | None  # None when the owner is gone (or not this dealer's)
    target: str
    data: str  # the JSON data as text


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    older: int | None  # the `before` cursor of the next (older) page, None when there is none
    newer: int | None  # the `after` cursor of the previous (newer) page


def _entries_query(where: list[ColumnElement[bool]]) -> Select[Any]:
    staff_name = func.coalesce(func.nullif(Staff.display_name, ""), Staff.username)
    return (
        select(AuditLog, staff_name.label("staff_name"), Customer.name.label("owner_name"))
        .outerjoin(Staff, and_(Staff.id == AuditLog.staff_id, Staff.dealer_id == AuditLog.dealer_id))
        .outerjoin(Customer, and_(Customer.id == AuditLog.customer_id, Customer.dealer_id == AuditLog.dealer_id))
        .where(*where)
    )


def _entry(row: Any) -> Entry:
    log: AuditLog = row[0]
    return Entry(id=log.id, created_at=log.created_at, staff_id=log.staff_id, staff_name=row.staff_name, action=log.action,
                 customer_id=log.customer_id, owner_name=row.owner_name, target=log.target or "", data=data_text(log.data))


def data_text(data: Any) -> str:
    """The row's JSON data as one line of text (Chinese kept readable); escaping is the template's job."""
    if not data:
        return ""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


def read_page(session: Session, dealer_id: int, query: AuditQuery, zone: str, *, size: int = PAGE_SIZE) -> Page:
    """One page of the log, newest first; `after` pages run forwards then flip, so both directions are one index range."""
    where = conditions(dealer_id, query, zone)
    if query.after is not None:
        rows = session.execute(_entries_query([*where, AuditLog.id > query.after]).order_by(AuditLog.id).limit(size)).all()
        rows.reverse()
    else:
        cursor = [AuditLog.id < query.before] if query.before is not None else []
        rows = session.execute(_entries_query([*where, *cursor]).order_by(AuditLog.id.desc()).limit(size)).all()
    entries = [_entry(row) for row in rows]
    if not entries:
        return Page(entries=[], older=None, newer=None)
    oldest, newest = entries[-1].id, entries[0].id
    return Page(entries=entries, older=oldest if _any(session, [*where, AuditLog.id < oldest]) else None,
                newer=newest if _any(session, [*where, AuditLog.id > newest]) else None)


def _any(session: Session, where: list[ColumnElement[bool]]) -> bool:
    return session.scalar(select(AuditLog.id).where(*where).limit(1)) is not None


def staff_choices(session: Session, dealer_id: int) -> list[tuple[int, str]]:
    """The dealer's staff for the filter, by name."""
    name = func.coalesce(func.nullif(Staff.display_name, ""), Staff.username)
    return [(row.id, row.name) for row in session.execute(
        select(Staff.id, name.label("name")).where(Staff.dealer_id == dealer_id).order_by(name, Staff.id))]


def action_choices(session: Session, dealer_id: int) -> list[str]:
    """The actions this dealer's log holds (one index range: dealer_id, action, created_at)."""
    return list(session.scalars(select(AuditLog.action).where(AuditLog.dealer_id == dealer_id).distinct()
                                .order_by(AuditLog.action).limit(500)))


# -- pages -----------------------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, staff: ManagerDep, query: AuditQueryDep) -> HTMLResponse:
    with _db(request).sessions() as session:
        page = read_page(session, staff.dealer_id, query, staff.timezone)
        staff_list = staff_choices(session, staff.dealer_id)
        actions = action_choices(session, staff.dealer_id)
    if query.action and query.action not in actions:
        actions.append(query.action)  # a filter typed into the URL still shows as chosen
    return render(
        request, "audit_log.html", staff=staff, page=page, query=query, staff_list=staff_list,
        actions=[(action, action_label(action, staff.language)) for action in actions],
        label=lambda action: action_label(action, staff.language),
        older_url=query.url(before=page.older) if page.older else None,
        newer_url=query.url(after=page.newer) if page.newer else None,
        newest_url=query.url() if query.before or query.after else None,
        export_url=query.url("/console/audit.csv") if staff.role == StaffRole.admin else None,
    )


@router.get("/audit.csv")
def audit_csv(request: Request, staff: AdminDep, clock: Clock, query: AuditQueryDep) -> StreamingResponse:
    """The filtered log as CSV for a spreadsheet; the export is audited before the first row leaves."""
    db = _db(request)
    now = clock()
    with db.transaction() as session:
        audit(session, staff, EXPORT, now=now, filters=query.filters())
    name = f"audit-log-{local(now, staff.timezone, '%Y%m%d-%H%M')}.csv"
    return StreamingResponse(csv_chunks(db, staff, query), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _db(request: Request) -> Database:
    return request.app.state.db


# -- CSV -------------------------------------------------------------------------------------------------

CSV_HEADER = ("id", "time", "staff_id", "staff", "action", "action_label", "customer_id", "owner", "target", "data")


def csv_chunks(db: Database, staff: CurrentStaff, query: AuditQuery) -> Iterator[str]:
    """The CSV in batches, newest first. Each batch reads in its own short transaction: on SQLite any
    transaction holds the write lock, so one long read would stall the bot for the whole download."""
    yield "\ufeff" + _csv_line(CSV_HEADER)  # the BOM: Excel then reads the Chinese as UTF-8
    cursor = query.model_copy(update={"before": query.before, "after": None})
    while True:
        with db.sessions() as session:
            page = read_page(session, staff.dealer_id, cursor, staff.timezone, size=EXPORT_BATCH)
        if page.entries:
            yield "".join(_csv_line(_csv_row(entry, staff)) for entry in page.entries)
        if page.older is None:
            return
        cursor = cursor.model_copy(update={"before": page.older})


def _csv_row(entry: Entry, staff: CurrentStaff) -> tuple[str, ...]:
    return (str(entry.id), local(entry.created_at, staff.timezone, "%Y-%m-%d %H:%M:%S"), _opt(entry.staff_id),
            entry.staff_name or "", entry.action, action_label(entry.action, staff.language), _opt(entry.customer_id),
            entry.owner_name or "", entry.target, entry.data)


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _csv_line(cells: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(cell) for cell in cells])
    return out.getvalue()


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote (CSV injection)."""
    return "'" + value if value.startswith(CSV_FORMULA) else value
