"""Console pages: complaint and roadside tickets.

`GET /console/tickets` lists the dealer's tickets with filters (kind, status, category, assignee, overdue);
open ones by default, urgent first, then the nearest SLA. A ticket past its SLA and not yet resolved is
overdue: its row is marked and labelled, so it stands out without colour alone.

`GET /console/tickets/{ticket_id}` shows one ticket, its history (from the audit log) and forms for what
staff can do next. Every change is a plain POST form (CSRF token, no script) answered with 303 back to the
ticket, and writes one audit row: who, what, when, on which owner, with the ticket reference as target.

The status moves live in `bot.tickets.MOVES`, the one place that says what may follow what. Resolving needs the result
the owner reads; `bot.tickets.resolve` sends it and gives the conversation back to the bot for the
follow-up question. A move the table does not allow answers 409, a missing result 422, each with the
ticket page again and the reason.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bot import tickets as ticket_work
from bot.console import text
from bot.console.auth import Clock, CurrentStaff, StaffDep
from bot.console.rendering import render
from bot.console.scope import Refused, actor, audit, owned, page_router
from bot.models import (
    AuditLog,
    Customer,
    Outbox,
    Staff,
    Ticket,
    TicketKind,
    TicketStatus,
)
from flows.complaint import CATEGORY_ORDER
from flows.roadside import PROBLEMS

router = page_router()

# What may follow what. Forward one step at a time; a resolved ticket may go back to work (the result
# was premature) until it is closed. Closed is final: the bot reopens a ticket as new when the owner
# says it is not settled, which is not a staff move and does not go through here.
MOVES = ticket_work.MOVES
# past these, an SLA no longer runs
DONE = (TicketStatus.resolved, TicketStatus.closed)
ACTIONS = {TicketStatus.resolved: "ticket.resolve", TicketStatus.closed: "ticket.close"}
CATEGORIES: dict[TicketKind, tuple[str, ...]] = {
    TicketKind.complaint: CATEGORY_ORDER,
    # the roadside flow files "unknown" until the owner says what happened
    TicketKind.roadside: (*PROBLEMS, "unknown"),
}
ALL_CATEGORIES = tuple(dict.fromkeys(CATEGORIES[TicketKind.complaint] + CATEGORIES[TicketKind.roadside]))
ASSIGNEE_FILTERS = ("mine", "none")
LIST_LIMIT = 200
RESULT_MAX = 2000
# the banner after a POST: only these keys, so the query string cannot put words on the page
DONE_KEYS = ("moved", "assigned", "classified", "resolved_sent", "resolved_kept")

text.register({
    "zh": {
        "ticket_list_title": "工单",
        "ticket_reference": "编号",
        "ticket_kind": "类型",
        "ticket_kind_complaint": "投诉",
        "ticket_kind_roadside": "道路救援",
        "ticket_category": "分类",
        "ticket_owner": "车主",
        "ticket_summary": "摘要",
        "ticket_status": "状态",
        "ticket_assignee": "处理人",
        "ticket_sla": "时限",
        "ticket_department": "责任部门",
        "ticket_urgent": "紧急",
        "ticket_overdue": "超时",
        "ticket_overdue_only": "只看超时",
        "ticket_any": "全部",
        "ticket_open": "未关闭",
        "ticket_all": "全部（含已关闭）",
        "ticket_mine": "我的",
        "ticket_unassigned": "未分配",
        "ticket_filter": "筛选",
        "ticket_reset": "清除筛选",
        "ticket_ignored": "已忽略无效的筛选条件：",
        "ticket_none": "没有符合条件的工单。",
        "ticket_limited": "只显示前 200 条，请缩小筛选范围。",
        "ticket_status_new": "新建",
        "ticket_status_acknowledged": "已受理",
        "ticket_status_in_progress": "处理中",
        "ticket_status_resolved": "已解决",
        "ticket_status_closed": "已关闭",
        "ticket_cat_product_quality": "产品质量",
        "ticket_cat_service": "服务",
        "ticket_cat_other": "其他",
        "ticket_cat_flat_tyre": "轮胎/爆胎",
        "ticket_cat_battery": "电瓶亏电",
        "ticket_cat_accident": "事故",
        "ticket_cat_breakdown": "故障抛锚",
        "ticket_cat_locked_out": "钥匙锁车内",
        "ticket_cat_fuel": "缺油/没电",
        "ticket_cat_unknown": "未说明",
        "ticket_facts": "工单信息",
        "ticket_created": "创建时间",
        "ticket_resolved_at": "解决时间",
        "ticket_result": "处理结果",
        "ticket_conversation": "对话",
        "ticket_open_conversation": "查看对话",
        "ticket_details": "详细信息",
        "ticket_history": "处理记录",
        "ticket_history_created": "工单创建",
        "ticket_when": "时间",
        "ticket_who": "操作人",
        "ticket_what": "操作",
        "ticket_action_ticket.status": "状态变更",
        "ticket_action_ticket.resolve": "解决",
        "ticket_action_ticket.close": "关闭",
        "ticket_action_ticket.assign": "分配",
        "ticket_action_ticket.classify": "修改分类/部门",
        "ticket_next": "下一步",
        "ticket_do_acknowledged": "受理",
        "ticket_do_in_progress": "开始处理",
        "ticket_do_reopen": "重新处理",
        "ticket_do_close": "关闭工单",
        "ticket_do_resolve": "解决并通知车主",
        "ticket_result_label": "处理结果（车主将收到这段文字）",
        "ticket_no_moves": "工单已关闭，不能再修改。",
        "ticket_assign": "分配给",
        "ticket_assign_me": "我自己",
        "ticket_assign_none": "不分配",
        "ticket_do_assign": "分配",
        "ticket_classify": "分类与责任部门",
        "ticket_dept_sales": "销售部",
        "ticket_dept_service": "售后服务部",
        "ticket_dept_parts": "配件部",
        "ticket_dept_care": "客户关怀中心",
        "ticket_dept_rescue": "救援调度",
        "ticket_error_illegal_move": "该状态变更不允许：工单只能按 新建 → 已受理 → 处理中 → 已解决 → 已关闭 的顺序推进。",
        "ticket_error_result_required": "请填写处理结果，车主会收到这段文字。",
        "ticket_error_bad_status": "未知的目标状态。",
        "ticket_error_bad_assignee": "只能分配给本店在职的同事。",
        "ticket_error_bad_category": "该分类不适用于此类工单。",
        "ticket_error_closed": "工单已关闭，不能再修改。",
        "ticket_done_moved": "状态已更新。",
        "ticket_done_assigned": "处理人已更新。",
        "ticket_done_classified": "分类与责任部门已更新。",
        "ticket_done_resolved_sent": "已解决，处理结果已发送给车主。",
        "ticket_done_resolved_kept": "已解决，处理结果已记录（未发送给车主）。",
    },
    "en": {
        "ticket_list_title": "Tickets",
        "ticket_reference": "Reference",
        "ticket_kind": "Kind",
        "ticket_kind_complaint": "Complaint",
        "ticket_kind_roadside": "Roadside",
        "ticket_category": "Category",
        "ticket_owner": "Owner",
        "ticket_summary": "Summary",
        "ticket_status": "Status",
        "ticket_assignee": "Assignee",
        "ticket_sla": "SLA",
        "ticket_department": "Department",
        "ticket_urgent": "Urgent",
        "ticket_overdue": "Overdue",
        "ticket_overdue_only": "Overdue only",
        "ticket_any": "Any",
        "ticket_open": "Open",
        "ticket_all": "All (with closed)",
        "ticket_mine": "Mine",
        "ticket_unassigned": "Unassigned",
        "ticket_filter": "Filter",
        "ticket_reset": "Clear filters",
        "ticket_ignored": "Ignored invalid filters: ",
        "ticket_none": "No tickets match.",
        "ticket_limited": "Showing the first 200 only; narrow the filters.",
        "ticket_status_new": "New",
        "ticket_status_acknowledged": "Acknowledged",
        "ticket_status_in_progress": "In progress",
        "ticket_status_resolved": "Resolved",
        "ticket_status_closed": "Closed",
        "ticket_cat_product_quality": "Product quality",
        "ticket_cat_service": "Service",
        "ticket_cat_other": "Other",
        "ticket_cat_flat_tyre": "Flat tyre",
        "ticket_cat_battery": "Battery",
        "ticket_cat_accident": "Accident",
        "ticket_cat_breakdown": "Breakdown",
        "ticket_cat_locked_out": "Locked out",
        "ticket_cat_fuel": "Out of fuel/charge",
        "ticket_cat_unknown": "Not stated",
        "ticket_facts": "Ticket",
        "ticket_created": "Created",
        "ticket_resolved_at": "Resolved",
        "ticket_result": "Result",
        "ticket_conversation": "Conversation",
        "ticket_open_conversation": "Open conversation",
        "ticket_details": "Details",
        "ticket_history": "History",
        "ticket_history_created": "Ticket opened",
        "ticket_when": "When",
        "ticket_who": "Who",
        "ticket_what": "What",
        "ticket_action_ticket.status": "Status change",
        "ticket_action_ticket.resolve": "Resolved",
        "ticket_action_ticket.close": "Closed",
        "ticket_action_ticket.assign": "Assigned",
        "ticket_action_ticket.classify": "Category/department changed",
        "ticket_next": "Next step",
        "ticket_do_acknowledged": "Acknowledge",
        "ticket_do_in_progress": "Start work",
        "ticket_do_reopen": "Reopen",
        "ticket_do_close": "Close ticket",
        "ticket_do_resolve": "Resolve and tell the owner",
        "ticket_result_label": "Result (the owner receives this text)",
        "ticket_no_moves": "The ticket is closed and can no longer change.",
        "ticket_assign": "Assign to",
        "ticket_assign_me": "Me",
        "ticket_assign_none": "Nobody",
        "ticket_do_assign": "Assign",
        "ticket_classify": "Category and department",
        "ticket_dept_sales": "Sales",
        "ticket_dept_service": "After-sales service",
        "ticket_dept_parts": "Parts",
        "ticket_dept_care": "Customer care centre",
        "ticket_dept_rescue": "Rescue dispatch",
        "ticket_error_illegal_move": "That status change is not allowed: tickets go new → acknowledged → in progress → "
                                            "resolved → closed, in that order.",
        "ticket_error_result_required": "Please write the result; the owner receives this text.",
        "ticket_error_bad_status": "Unknown target status.",
        "ticket_error_bad_assignee": "Tickets can only go to an active colleague of this dealer.",
        "ticket_error_bad_category": "That category does not fit this kind of ticket.",
        "ticket_error_closed": "The ticket is closed and can no longer change.",
        "ticket_done_moved": "Status updated.",
        "ticket_done_assigned": "Assignee updated.",
        "ticket_done_classified": "Category and department updated.",
        "ticket_done_resolved_sent": "Resolved; the result was sent to the owner.",
        "ticket_done_resolved_kept": "Resolved; the result is recorded (not sent to the owner).",
    },
})

# department suggestions offered in the form (a datalist: staff may still type their own)
DEPARTMENT_KEYS = ("ticket_dept_service", "ticket_dept_sales", "ticket_dept_parts", "ticket_dept_care", "ticket_dept_rescue")


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    """Past its SLA and still open: what staff must see first."""
    return ticket.sla_due_at is not None and ticket.sla_due_at < now and ticket.status not in DONE


# -- the list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The list's filters as plain strings ("" = any), ready for the form to show them again."""

    kind: str = ""
    status: str = "open"  # open | all | a TicketStatus value
    category: str = ""
    assignee: str = ""  # "" | mine | none
    overdue: bool = False
    ignored: tuple[str, ...] = ()  # filter names whose values meant nothing


def parse_filters(kind: str | None, status: str | None, category: str | None, assignee: str | None,
                  overdue: str | None) -> Filters:
    """Keeps the values that mean something; an unknown one is dropped and named, never an error page."""
    ignored: list[str] = []

    def pick(name: str, value: str | None, allowed: tuple[str, ...], default: str = "") -> str:
        if not value:
            return default
        if value in allowed:
            return value
        ignored.append(name)
        return default

    statuses = ("open", "all", *(s.value for s in TicketStatus))
    return Filters(
        kind=pick("kind", kind, tuple(k.value for k in TicketKind)),
        status=pick("status", status, statuses, "open"),
        category=pick("category", category, ALL_CATEGORIES),
        assignee=pick("assignee", assignee, ASSIGNEE_FILTERS),
        overdue=pick("overdue", overdue, ("1", "on", "true")) != "",
        ignored=tuple(ignored),
    )


def list_query(staff: CurrentStaff, filters: Filters, now: datetime) -> Select[Any]:
    """The dealer's tickets with owner and assignee names: urgent first, then the nearest SLA."""
    query = (
        select(Ticket, Customer.name, Staff.display_name, Staff.username)
        .join(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(Staff, Staff.id == Ticket.assignee_id)
        .where(Ticket.dealer_id == staff.dealer_id)
    )
    if filters.kind:
        query = query.where(Ticket.kind == TicketKind(filters.kind))
    if filters.status == "open":
        query = query.where(Ticket.status != TicketStatus.closed)
    elif filters.status != "all":
        query = query.where(Ticket.status == TicketStatus(filters.status))
    if filters.category:
        query = query.where(Ticket.category == filters.category)
    if filters.assignee == "mine":
        query = query.where(Ticket.assignee_id == staff.staff_id)
    elif filters.assignee == "none":
        query = query.where(Ticket.assignee_id.is_(None))
    if filters.overdue:
        query = query.where(Ticket.sla_due_at < now, Ticket.status.not_in(DONE))
    # `IS NULL` as a sort key puts tickets without an SLA last on both databases (no NULLS LAST needed)
    return query.order_by(Ticket.urgent.desc(), Ticket.sla_due_at.is_(None), Ticket.sla_due_at, Ticket.id).limit(LIST_LIMIT + 1)


@dataclass(frozen=True)
class ListRow:
    ticket: Ticket
    owner: str
    assignee: str
    overdue: bool


@router.get("/tickets", response_class=HTMLResponse)
def ticket_list(
    request: Request,
    staff: StaffDep,
    clock: Clock,
    kind: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    assignee: Annotated[str | None, Query(max_length=40)] = None,
    overdue: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    now = clock()
    filters = parse_filters(kind, status, category, assignee, overdue)
    with request.app.state.db.sessions() as session:
        found = session.execute(list_query(staff, filters, now)).all()
    rows = [ListRow(ticket, owner or f"#{ticket.customer_id}", name or username or "", is_overdue(ticket, now))
            for ticket, owner, name, username in found[:LIST_LIMIT]]
    return render(request, "tickets.html", staff=staff, now=now, rows=rows, filters=filters, limited=len(found) > LIST_LIMIT,
                  kinds=[k.value for k in TicketKind], statuses=[s.value for s in TicketStatus], categories=CATEGORIES,
                  done_statuses=[s.value for s in DONE])


# -- one ticket ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    who: str
    action: str
    data: dict[str, Any]


def history(session: Session, staff: CurrentStaff, ticket: Ticket) -> list[HistoryEntry]:
    """The ticket's story from the audit log: every staff move, oldest first, after its opening."""
    rows = session.execute(
        select(AuditLog, Staff.display_name, Staff.username)
        .outerjoin(Staff, Staff.id == AuditLog.staff_id)
        .where(AuditLog.dealer_id == staff.dealer_id, AuditLog.target == ticket.reference, AuditLog.action.like("ticket.%"))
        .order_by(AuditLog.created_at, AuditLog.id)
    ).all()
    opened = HistoryEntry(ticket.created_at, "", "created", {})
    return [opened, *(HistoryEntry(row.created_at, name or username or "", row.action, row.data or {})
                      for row, name, username in rows)]


def colleagues(session: Session, staff: CurrentStaff) -> list[Staff]:
    """Who a ticket can go to: active staff of the same dealer."""
    return list(session.scalars(
        select(Staff).where(Staff.dealer_id == staff.dealer_id, Staff.active.is_(True)).order_by(Staff.display_name, Staff.id)
    ))


def next_moves(ticket: Ticket) -> list[tuple[str, str]]:
    """The plain status buttons as (target status, label key); resolving and closing have forms of their own."""
    moves = []
    for target in MOVES[TicketStatus(ticket.status)]:
        if target in DONE:
            continue
        reopen = ticket.status == TicketStatus.resolved and target == TicketStatus.in_progress
        moves.append((target.value, "ticket_do_reopen" if reopen else f"ticket_do_{target.value}"))
    return moves


def _page(request: Request, staff: CurrentStaff, ticket_id: int, now: datetime, *, status_code: int = 200,
          error: str | None = None, done: str | None = None, result: str = "") -> HTMLResponse:
    with request.app.state.db.sessions() as session:
        ticket = owned(session, Ticket, ticket_id, staff)
        owner = session.get_one(Customer, ticket.customer_id)
        people = colleagues(session, staff)
        assignee = session.get(Staff, ticket.assignee_id) if ticket.assignee_id else None
        story = history(session, staff, ticket)
    status = TicketStatus(ticket.status)
    return render(
        request, "ticket.html", staff=staff, now=now, status_code=status_code, ticket=ticket, owner=owner, people=people,
        assignee=assignee, history=story, overdue=is_overdue(ticket, now),
        details=json.dumps(ticket.details or {}, ensure_ascii=False, indent=2, sort_keys=True, default=str),
        moves=next_moves(ticket), can_resolve=TicketStatus.resolved in MOVES[status],
        can_close=TicketStatus.closed in MOVES[status], editable=status != TicketStatus.closed,
        categories=CATEGORIES[TicketKind(ticket.kind)], department_keys=DEPARTMENT_KEYS, error=error,
        done=done if done in DONE_KEYS else None, result=result, done_statuses=[s.value for s in DONE],
    )


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, staff: StaffDep, clock: Clock, ticket_id: int,
                done: Annotated[str | None, Query(max_length=20)] = None) -> HTMLResponse:
    return _page(request, staff, ticket_id, clock(), done=done)


# -- the changes -----------------------------------------------------------------------------------


def _act(request: Request, staff: CurrentStaff, ticket_id: int, now: datetime,
         change: Callable[[Session, Ticket], str], *, result: str = "") -> Response:
    """Runs one change on the locked ticket in one transaction; a refusal writes nothing and shows the page again."""
    try:
        with request.app.state.db.transaction() as session:
            ticket = owned(session, Ticket, ticket_id, staff, lock=True)
            done = change(session, ticket)
    except Refused as refused:
        return _page(request, staff, ticket_id, now, status_code=refused.status_code, error=refused.key, result=result)
    return RedirectResponse(f"/console/tickets/{ticket_id}?done={done}", status_code=303)


def _results_sent(session: Session, ticket: Ticket) -> int:
    if ticket.conversation_id is None:
        return 0
    return session.scalar(select(func.count()).select_from(Outbox).where(
        Outbox.conversation_id == ticket.conversation_id, Outbox.kind == "ticket_result")) or 0


def _resolve(session: Session, staff: CurrentStaff, ticket: Ticket, result: str, now: datetime) -> str:
    """Resolves through bot.tickets (which tells the owner); says whether a message actually went out."""
    if not result.strip():
        raise Refused(422, "result_required")
    before = _results_sent(session, ticket)
    try:
        ticket_work.resolve(session, ticket, result=result, actor=actor(staff), now=now)
    except ticket_work.TicketError as error:
        raise Refused(409, "illegal_move") from error
    # a ticket with no conversation, or an owner with no reachable channel, gets no message: staff must know that
    return "resolved_sent" if _results_sent(session, ticket) > before else "resolved_kept"


def move(session: Session, staff: CurrentStaff, ticket: Ticket, to: TicketStatus, now: datetime, *, result: str = "") -> str:
    """One status move allowed by MOVES, audited; returns the banner key for the page."""
    before = TicketStatus(ticket.status)
    if to not in MOVES[before]:
        raise Refused(409, "illegal_move")
    data: dict[str, Any] = {"from": before.value, "to": to.value}
    done = "moved"
    if to == TicketStatus.resolved:
        done = _resolve(session, staff, ticket, result, now)
        data["result"] = ticket.result
    elif before == TicketStatus.resolved and to == TicketStatus.in_progress:
        # reopened: the earlier result stays in this ticket's audit history
        ticket_work.reopen(session, ticket)
    else:
        ticket.status = to
        if to == TicketStatus.acknowledged and ticket.assignee_id is None:
            # whoever acknowledges an unassigned ticket has taken it: "mine" then finds it
            ticket.assignee_id = data["assignee_id"] = staff.staff_id
    audit(session, staff, ACTIONS.get(to, "ticket.status"), customer_id=ticket.customer_id, target=ticket.reference, now=now,
          **data)
    return done


def _target(value: str) -> TicketStatus:
    try:
        return TicketStatus(value)
    except ValueError as error:
        raise Refused(422, "bad_status") from error


@router.post("/tickets/{ticket_id}/status")
def change_status(request: Request, staff: StaffDep, clock: Clock, ticket_id: int, to: Annotated[str, Form(max_length=20)],
                  result: Annotated[str, Form(max_length=RESULT_MAX)] = "") -> Response:
    now = clock()

    def change(session: Session, ticket: Ticket) -> str:
        return move(session, staff, ticket, _target(to), now, result=result)

    return _act(request, staff, ticket_id, now, change, result=result)


@router.post("/tickets/{ticket_id}/resolve")
def resolve(request: Request, staff: StaffDep, clock: Clock, ticket_id: int,
            result: Annotated[str, Form(max_length=RESULT_MAX)] = "") -> Response:
    now = clock()
    return _act(request, staff, ticket_id, now,
                lambda session, ticket: move(session, staff, ticket, TicketStatus.resolved, now, result=result), result=result)


@router.post("/tickets/{ticket_id}/close")
def close(request: Request, staff: StaffDep, clock: Clock, ticket_id: int) -> Response:
    now = clock()
    return _act(request, staff, ticket_id, now, lambda session, ticket: move(session, staff, ticket, TicketStatus.closed, now))


def assign(session: Session, staff: CurrentStaff, ticket: Ticket, choice: str, now: datetime) -> str:
    """Gives the ticket to a colleague ("me", an id) or to nobody (""); another dealer's staff id is 404."""
    if ticket.status == TicketStatus.closed:
        raise Refused(409, "closed")
    if choice in ("", "none"):
        assignee = None
    else:
        try:
            wanted = staff.staff_id if choice == "me" else int(choice)
        except ValueError as error:
            raise Refused(422, "bad_assignee") from error
        assignee = owned(session, Staff, wanted, staff)
        if not assignee.active:
            raise Refused(422, "bad_assignee")
    before, ticket.assignee_id = ticket.assignee_id, assignee.id if assignee else None
    audit(session, staff, "ticket.assign", customer_id=ticket.customer_id, target=ticket.reference, now=now,
          before=before, assignee_id=ticket.assignee_id,
          assignee_name=(assignee.display_name or assignee.username) if assignee else "")
    return "assigned"


@router.post("/tickets/{ticket_id}/assign")
def assign_ticket(request: Request, staff: StaffDep, clock: Clock, ticket_id: int,
                  assignee_id: Annotated[str, Form(max_length=20)] = "") -> Response:
    now = clock()
    return _act(request, staff, ticket_id, now, lambda session, ticket: assign(session, staff, ticket, assignee_id.strip(), now))


def classify(session: Session, staff: CurrentStaff, ticket: Ticket, category: str, department: str, now: datetime) -> str:
    """Sets the class (one of the ticket kind's) and the responsible department (free text, blank = none)."""
    if ticket.status == TicketStatus.closed:
        raise Refused(409, "closed")
    if category not in CATEGORIES[TicketKind(ticket.kind)]:
        raise Refused(422, "bad_category")
    before = {"category": ticket.category, "department": ticket.department}
    ticket.category, ticket.department = category, department.strip() or None
    audit(session, staff, "ticket.classify", customer_id=ticket.customer_id, target=ticket.reference, now=now,
          before=before, category=ticket.category, department=ticket.department)
    return "classified"


@router.post("/tickets/{ticket_id}/classify")
def classify_ticket(request: Request, staff: StaffDep, clock: Clock, ticket_id: int,
                    category: Annotated[str, Form(max_length=32)], department: Annotated[str, Form(max_length=64)] = "") -> Response:
    now = clock()
    return _act(request, staff, ticket_id, now,
                lambda session, ticket: classify(session, staff, ticket, category, department, now))
