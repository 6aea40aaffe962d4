"""Console pages: the owner view (车主档案) and the owner search.

One page holds what staff know about an owner: profile, channels (opted out, unreachable, WeChat's 48-hour
window), vehicles, service history, appointments, tickets, survey answers, conversations and the whole transcript
across WeChat, SMS and internal notes. Staff edit the owner's notes there; managers and admins also the tier.

Every record is the signed-in staff member's dealer's: another dealer's owner answers 404 on every route, checked
before anything else (role, form fields) so a guessed id tells nothing. Opening the page writes an `owner.view`
audit row, since reading personal data deserves a trail (PIPL), but at most one per staff member and owner every
VIEW_QUIET: a refresh, or the redirect after saving notes, would otherwise bury the log in repeats.

The page costs a fixed number of queries whatever the owner's history: one per section, each with a limit, plus
the WeChat window's one or two per WeChat openid (an owner has one, rarely two).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session

from bot.console import text
from bot.console.auth import Clock, CurrentStaff, StaffDep
from bot.console.rendering import render
from bot.console.scope import audit, owned, page_router
from bot.console.transcript import Line, for_customer
from bot.deps import DatabaseDep
from bot.models import (
    Appointment,
    AuditLog,
    Channel,
    ChannelIdentity,
    Conversation,
    Customer,
    Dealer,
    ServiceRecord,
    Staff,
    StaffRole,
    Survey,
    SurveyResponse,
    Ticket,
    Vehicle,
)
from flows.survey import LOW as LOW_SCORE
from flows.survey import SCALES
from integrations.wechat.window import Allowance, allowance

router = page_router()

SEARCH_LIMIT = 50
SECTION_LIMIT = 50  # rows per section: an owner of twenty years still gets a page that loads
NOTES_MAX = 2000
TIERS = ("A", "B", "C")
VIEW = "owner.view"
VIEW_QUIET = timedelta(minutes=10)
# a BIGINT at most: a longer id would be a database error (500) on PostgreSQL rather than a plain 422
CustomerId = Annotated[int, Path(ge=1, le=2**63 - 1)]
SAVED = ("notes", "tier")  # what `?saved=` may announce after a POST's redirect
# what people type around a phone number: 138 0013 8000, 138-0013-8000, (020) 8888 6666
_PHONE_DECOR = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"(\+|00)?(\d+)")

text.register({
    "zh": {
        "owner_title": "车主档案",
        "owner_search": "车主查询",
        "owner_search_hint": "按姓名、手机号或车牌号查询",
        "owner_search_go": "查询",
        "owner_search_none": "没有找到匹配的车主。",
        "owner_search_more": "只显示前 50 条结果，请输入更准确的关键词。",
        "owner_back": "返回车主查询",
        "owner_profile": "基本资料",
        "owner_name": "姓名",
        "owner_phone": "手机号",
        "owner_tier": "客户等级",
        "owner_tier_A": "A 类（每 1-3 个月联系）",
        "owner_tier_B": "B 类（每 3-6 个月联系）",
        "owner_tier_C": "C 类（每 6-12 个月联系）",
        "owner_tier_change": "修改等级",
        "owner_birthday": "生日",
        "owner_language": "语言",
        "owner_lang_zh": "中文",
        "owner_lang_en": "英文",
        "owner_preferred_channel": "首选渠道",
        "owner_advisor": "服务顾问",
        "owner_since": "建档时间",
        "owner_channels": "联系渠道",
        "owner_channel": "渠道",
        "owner_address": "号码/账号",
        "owner_last_inbound": "车主最近来信",
        "owner_flags": "状态",
        "owner_opted_out": "已退订",
        "owner_unreachable": "无法送达",
        "owner_reachable": "正常",
        "owner_wechat_open": "微信48小时窗口开放",
        "owner_wechat_left": "剩余可发",
        "owner_wechat_until": "截止",
        "owner_wechat_closed": "微信48小时窗口已关闭",
        "owner_wechat_closed_hint": "现在只能发送订阅消息或模板消息；如需联系车主，请改用短信或电话。",
        "owner_notes": "客服备注（车主看不到）",
        "owner_notes_saved": "备注已保存。",
        "owner_tier_saved": "客户等级已更新。",
        "owner_vehicles": "车辆",
        "owner_plate": "车牌号",
        "owner_model": "车型",
        "owner_vin": "车架号",
        "owner_mileage": "里程（公里）",
        "owner_last_service": "上次保养",
        "owner_insurance_due": "保险到期",
        "owner_inspection_due": "年检到期",
        "owner_warranty_until": "质保截止",
        "owner_no_vehicles": "暂无车辆。",
        "owner_history": "维修保养记录",
        "owner_order_no": "维修单号",
        "owner_service_type": "服务项目",
        "owner_opened_on": "进厂日期",
        "owner_closed_at": "交车时间",
        "owner_amount": "金额（元）",
        "owner_summary": "维修内容",
        "owner_no_history": "暂无维修保养记录。",
        "owner_appointments": "预约",
        "owner_reference": "编号",
        "owner_when": "时间",
        "owner_bay": "工位",
        "owner_status": "状态",
        "owner_pickup": "上门取送车",
        "owner_appt_booked": "已预约",
        "owner_appt_confirmed": "已确认",
        "owner_appt_cancelled": "已取消",
        "owner_appt_done": "已完成",
        "owner_appt_no_show": "未到店",
        "owner_no_appointments": "暂无预约。",
        "owner_tickets": "工单（投诉/救援）",
        "owner_kind": "类型",
        "owner_kind_complaint": "投诉",
        "owner_kind_roadside": "道路救援",
        "owner_category": "类别",
        "owner_cat_product_quality": "产品质量",
        "owner_cat_service": "服务",
        "owner_cat_other": "其他",
        "owner_urgent": "紧急",
        "owner_created": "创建时间",
        "owner_issue": "问题描述",
        "owner_ticket_new": "新建",
        "owner_ticket_acknowledged": "已受理",
        "owner_ticket_in_progress": "处理中",
        "owner_ticket_resolved": "已解决",
        "owner_ticket_closed": "已关闭",
        "owner_no_tickets": "暂无工单。",
        "owner_surveys": "满意度回访",
        "owner_score": "评分",
        "owner_comment": "意见",
        "owner_answered": "回答时间",
        "owner_linked_ticket": "关联工单",
        "owner_low_score": "低分",
        "owner_no_surveys": "暂无回访记录。",
        "owner_conversations": "对话",
        "owner_conv_bot": "机器人接待",
        "owner_conv_waiting_staff": "等待人工",
        "owner_conv_staff": "人工处理中",
        "owner_conv_closed": "已结束",
        "owner_handled_by": "接待客服",
        "owner_last_channel": "最近渠道",
        "owner_last_message": "最近消息",
        "owner_open": "打开",
        "owner_no_conversations": "暂无对话。",
        "owner_transcript": "全部对话记录（微信、短信及内部备注）",
    },
    "en": {
        "owner_title": "Owner",
        "owner_search": "Find an owner",
        "owner_search_hint": "Search by name, phone or plate",
        "owner_search_go": "Search",
        "owner_search_none": "No owner matches.",
        "owner_search_more": "Showing the first 50 only; please narrow the search.",
        "owner_back": "Back to owner search",
        "owner_profile": "Profile",
        "owner_name": "Name",
        "owner_phone": "Phone",
        "owner_tier": "Tier",
        "owner_tier_A": "A (contact every 1-3 months)",
        "owner_tier_B": "B (contact every 3-6 months)",
        "owner_tier_C": "C (contact every 6-12 months)",
        "owner_tier_change": "Change tier",
        "owner_birthday": "Birthday",
        "owner_language": "Language",
        "owner_lang_zh": "Chinese",
        "owner_lang_en": "English",
        "owner_preferred_channel": "Preferred channel",
        "owner_advisor": "Service advisor",
        "owner_since": "On file since",
        "owner_channels": "Channels",
        "owner_channel": "Channel",
        "owner_address": "Number / account",
        "owner_last_inbound": "Owner last wrote",
        "owner_flags": "State",
        "owner_opted_out": "Opted out",
        "owner_unreachable": "Unreachable",
        "owner_reachable": "OK",
        "owner_wechat_open": "WeChat 48-hour window open",
        "owner_wechat_left": "messages left",
        "owner_wechat_until": "until",
        "owner_wechat_closed": "WeChat 48-hour window closed",
        "owner_wechat_closed_hint": "Only a subscription or template message can reach the owner now; use SMS or a call.",
        "owner_notes": "Staff notes (never shown to the owner)",
        "owner_notes_saved": "Notes saved.",
        "owner_tier_saved": "Tier updated.",
        "owner_vehicles": "Vehicles",
        "owner_plate": "Plate",
        "owner_model": "Model",
        "owner_vin": "VIN",
        "owner_mileage": "Mileage (km)",
        "owner_last_service": "Last service",
        "owner_insurance_due": "Insurance due",
        "owner_inspection_due": "Inspection due",
        "owner_warranty_until": "Warranty until",
        "owner_no_vehicles": "No vehicles.",
        "owner_history": "Service history",
        "owner_order_no": "Repair order",
        "owner_service_type": "Service",
        "owner_opened_on": "Opened",
        "owner_closed_at": "Delivered",
        "owner_amount": "Amount (CNY)",
        "owner_summary": "Work done",
        "owner_no_history": "No service history.",
        "owner_appointments": "Appointments",
        "owner_reference": "Reference",
        "owner_when": "When",
        "owner_bay": "Bay",
        "owner_status": "Status",
        "owner_pickup": "Pick-up",
        "owner_appt_booked": "Booked",
        "owner_appt_confirmed": "Confirmed",
        "owner_appt_cancelled": "Cancelled",
        "owner_appt_done": "Done",
        "owner_appt_no_show": "No-show",
        "owner_no_appointments": "No appointments.",
        "owner_tickets": "Tickets (complaints, roadside)",
        "owner_kind": "Kind",
        "owner_kind_complaint": "Complaint",
        "owner_kind_roadside": "Roadside",
        "owner_category": "Category",
        "owner_cat_product_quality": "Product quality",
        "owner_cat_service": "Service",
        "owner_cat_other": "Other",
        "owner_urgent": "Urgent",
        "owner_created": "Created",
        "owner_issue": "Issue",
        "owner_ticket_new": "New",
        "owner_ticket_acknowledged": "Acknowledged",
        "owner_ticket_in_progress": "In progress",
        "owner_ticket_resolved": "Resolved",
        "owner_ticket_closed": "Closed",
        "owner_no_tickets": "No tickets.",
        "owner_surveys": "Survey answers",
        "owner_score": "Score",
        "owner_comment": "Comment",
        "owner_answered": "Answered",
        "owner_linked_ticket": "Ticket",
        "owner_low_score": "Low",
        "owner_no_surveys": "No survey answers.",
        "owner_conversations": "Conversations",
        "owner_conv_bot": "With the bot",
        "owner_conv_waiting_staff": "Waiting for staff",
        "owner_conv_staff": "With staff",
        "owner_conv_closed": "Closed",
        "owner_handled_by": "Staff",
        "owner_last_channel": "Last channel",
        "owner_last_message": "Last message",
        "owner_open": "Open",
        "owner_no_conversations": "No conversations.",
        "owner_transcript": "Whole conversation (WeChat, SMS and internal notes)",
    },
})


# -- search ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hit:
    """One owner in the search results."""

    id: int
    name: str
    phone: str | None
    tier: str
    plates: list[str]


def phone_digits(query: str) -> str | None:
    """The digits to look for in stored E.164 numbers (+8613800138000), or None when the query is no number.

    Staff type numbers as the owner said them: with or without +86 / 0086, with spaces or dashes, landlines
    with their trunk 0 (020-88886666 is stored +862088886666).
    """
    match = _PHONE.fullmatch(_PHONE_DECOR.sub("", query))
    if match is None:
        return None
    international, digits = match.groups()
    if international or (len(digits) == 13 and digits.startswith("86")):
        digits = digits.removeprefix("86")
    elif digits.startswith("0"):
        digits = digits[1:]
    return digits or None


def search_owners(session: Session, dealer_id: int, query: str) -> list[Hit]:
    """The dealer's owners whose name, phone or a plate contains the query; at most SEARCH_LIMIT + 1."""
    query = query.strip()
    if not query:
        return []
    # plates are stored upper case without spaces (粤B12345); staff type 粤b 12345
    plate = query.replace(" ", "").upper()
    matches = [
        Customer.name.icontains(query, autoescape=True),
        Customer.id.in_(select(Vehicle.customer_id).where(Vehicle.dealer_id == dealer_id,
                                                         Vehicle.plate.icontains(plate, autoescape=True))),
    ]
    if digits := phone_digits(query):
        matches.append(Customer.phone.contains(digits, autoescape=True))
    rows = session.execute(
        select(Customer.id, Customer.name, Customer.phone, Customer.tier)
        .where(Customer.dealer_id == dealer_id, or_(*matches))
        .order_by(Customer.name, Customer.id)
        .limit(SEARCH_LIMIT + 1)  # one more than shown tells the page to say "narrow it down"
    ).all()
    plates = _plates(session, dealer_id, [row.id for row in rows])
    return [Hit(id=row.id, name=row.name, phone=row.phone, tier=row.tier, plates=plates.get(row.id, [])) for row in rows]


def _plates(session: Session, dealer_id: int, customer_ids: list[int]) -> dict[int, list[str]]:
    if not customer_ids:
        return {}
    found: dict[int, list[str]] = {}
    for customer_id, plate in session.execute(
        select(Vehicle.customer_id, Vehicle.plate)
        .where(Vehicle.dealer_id == dealer_id, Vehicle.customer_id.in_(customer_ids))
        .order_by(Vehicle.id)
    ):
        found.setdefault(customer_id, []).append(plate)
    return found


# -- the owner page --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One way to reach the owner, and whether it works right now."""

    identity: ChannelIdentity
    window: Allowance | None = None  # WeChat only: the 48-hour customer-service window


@dataclass
class OwnerPage:
    """Everything the owner page shows, loaded with a fixed number of queries."""

    customer: Customer
    channels: list[ChannelState]
    vehicles: list[Vehicle]
    history: list[Row[Any]]
    appointments: list[Row[Any]]
    tickets: list[Ticket]
    surveys: list[Row[Any]]
    conversations: list[Conversation]
    lines: list[Line]
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # service code -> the dealer's names
    names: dict[str, str] = field(default_factory=dict)  # "staff:<id>" -> display name


def load_owner(session: Session, staff: CurrentStaff, customer: Customer, now: datetime) -> OwnerPage:
    """Loads the owner page's sections; each is one query whatever the owner's history."""
    dealer_id, customer_id = staff.dealer_id, customer.id
    conversations = _conversations(session, dealer_id, customer_id)
    lines = for_customer(session, dealer_id, customer_id)
    page = OwnerPage(
        customer=customer,
        channels=_channels(session, dealer_id, customer_id, now),
        vehicles=_vehicles(session, dealer_id, customer_id),
        history=_history(session, dealer_id, customer_id),
        appointments=_appointments(session, dealer_id, customer_id),
        tickets=_tickets(session, dealer_id, customer_id),
        surveys=_surveys(session, dealer_id, customer_id),
        conversations=conversations,
        lines=lines,
        services=_services(session, dealer_id),
    )
    staff_ids = {customer.advisor_id, *(c.handed_off_to for c in conversations), *_staff_senders(lines)}
    page.names = _staff_names(session, dealer_id, {i for i in staff_ids if i is not None})
    return page


def _channels(session: Session, dealer_id: int, customer_id: int, now: datetime) -> list[ChannelState]:
    identities = session.scalars(
        select(ChannelIdentity)
        .where(ChannelIdentity.dealer_id == dealer_id, ChannelIdentity.customer_id == customer_id)
        .order_by(ChannelIdentity.channel, ChannelIdentity.id)
    ).all()
    # an owner has one or two WeChat openids at most, so asking the window per identity stays a handful
    return [ChannelState(identity, allowance(session, dealer_id, identity.address, now)
                         if identity.channel == Channel.wechat else None) for identity in identities]


def _vehicles(session: Session, dealer_id: int, customer_id: int) -> list[Vehicle]:
    return list(session.scalars(
        select(Vehicle).where(Vehicle.dealer_id == dealer_id, Vehicle.customer_id == customer_id).order_by(Vehicle.id)
        .limit(SECTION_LIMIT)
    ))


def _history(session: Session, dealer_id: int, customer_id: int) -> list[Row[Any]]:
    """Service records, newest first, with the plate of the car each was for."""
    return list(session.execute(
        select(ServiceRecord, Vehicle.plate)
        .join(Vehicle, Vehicle.id == ServiceRecord.vehicle_id)
        .where(ServiceRecord.dealer_id == dealer_id, ServiceRecord.customer_id == customer_id)
        .order_by(ServiceRecord.opened_on.desc(), ServiceRecord.id.desc())
        .limit(SECTION_LIMIT)
    ))


def _appointments(session: Session, dealer_id: int, customer_id: int) -> list[Row[Any]]:
    return list(session.execute(
        select(Appointment, Vehicle.plate)
        .outerjoin(Vehicle, Vehicle.id == Appointment.vehicle_id)
        .where(Appointment.dealer_id == dealer_id, Appointment.customer_id == customer_id)
        .order_by(Appointment.starts_at.desc())
        .limit(SECTION_LIMIT)
    ))


def _tickets(session: Session, dealer_id: int, customer_id: int) -> list[Ticket]:
    return list(session.scalars(
        select(Ticket).where(Ticket.dealer_id == dealer_id, Ticket.customer_id == customer_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(SECTION_LIMIT)
    ))


def _surveys(session: Session, dealer_id: int, customer_id: int) -> list[Row[Any]]:
    """Answered surveys, newest first, with the ticket a low score opened and the repair order asked about."""
    return list(session.execute(
        select(SurveyResponse.score, SurveyResponse.comment, SurveyResponse.created_at, SurveyResponse.ticket_id,
               Survey.kind, Ticket.reference.label("ticket_reference"), ServiceRecord.order_no)
        .join(Survey, Survey.id == SurveyResponse.survey_id)
        .outerjoin(Ticket, Ticket.id == SurveyResponse.ticket_id)
        .outerjoin(ServiceRecord, ServiceRecord.id == Survey.service_record_id)
        .where(Survey.dealer_id == dealer_id, Survey.customer_id == customer_id)
        .order_by(SurveyResponse.created_at.desc())
        .limit(SECTION_LIMIT)
    ))


def _conversations(session: Session, dealer_id: int, customer_id: int) -> list[Conversation]:
    return list(session.scalars(
        select(Conversation).where(Conversation.dealer_id == dealer_id, Conversation.customer_id == customer_id)
        .order_by(Conversation.id.desc())
        .limit(SECTION_LIMIT)
    ))


def _services(session: Session, dealer_id: int) -> dict[str, dict[str, Any]]:
    """The dealer's service names by code, so staff read 小保养 rather than minor_service."""
    config = session.scalar(select(Dealer.config).where(Dealer.id == dealer_id)) or {}
    return {service["code"]: service for service in config.get("services", []) if "code" in service}


def _staff_senders(lines: list[Line]) -> set[int]:
    ids = set()
    for line in lines:
        kind, _, staff_id = line.sender.partition(":")
        if kind == "staff" and staff_id.isdigit():
            ids.add(int(staff_id))
    return ids


def _staff_names(session: Session, dealer_id: int, staff_ids: set[int]) -> dict[str, str]:
    if not staff_ids:
        return {}
    rows = session.execute(
        select(Staff.id, Staff.display_name, Staff.username).where(Staff.dealer_id == dealer_id, Staff.id.in_(staff_ids))
    )
    return {f"staff:{row.id}": row.display_name or row.username for row in rows}


def record_view(session: Session, staff: CurrentStaff, customer_id: int, now: datetime) -> None:
    """Writes `owner.view`, unless this staff member's last view of this owner is under VIEW_QUIET old."""
    recent = session.scalar(
        select(AuditLog.id)
        .where(AuditLog.dealer_id == staff.dealer_id, AuditLog.action == VIEW, AuditLog.created_at > now - VIEW_QUIET,
               AuditLog.staff_id == staff.staff_id, AuditLog.customer_id == customer_id)
        .limit(1)
    )
    if recent is None:
        audit(session, staff, VIEW, customer_id=customer_id, target=f"customer:{customer_id}", now=now)


# -- routes ----------------------------------------------------------------------------------------


# Each route opens its own transaction rather than taking SessionDep: it commits before the response goes out,
# so the GET after a redirect (and the audit row of a view) never races the commit.


@router.get("/owners", response_class=HTMLResponse)
def owners(request: Request, staff: StaffDep, db: DatabaseDep, q: str = "") -> HTMLResponse:
    query = q.strip()[:100]
    with db.transaction() as session:
        hits = search_owners(session, staff.dealer_id, query)
    return render(request, "owners.html", staff=staff, q=query, hits=hits[:SEARCH_LIMIT], more=len(hits) > SEARCH_LIMIT)


@router.get("/owners/{customer_id}", response_class=HTMLResponse)
def owner(request: Request, staff: StaffDep, db: DatabaseDep, clock: Clock, customer_id: CustomerId,
          saved: str = "") -> HTMLResponse:
    now = clock()
    with db.transaction() as session:
        customer = owned(session, Customer, customer_id, staff)
        page = load_owner(session, staff, customer, now)
        record_view(session, staff, customer.id, now)
    # `lines` and `names` are what _transcript.html reads
    return render(request, "owner.html", staff=staff, now=now, page=page, owner=page.customer, lines=page.lines,
                  names=page.names, tiers=TIERS, notes_max=NOTES_MAX, saved=saved if saved in SAVED else "",
                  scales=SCALES, low_score=LOW_SCORE, can_tier=staff.role in (StaffRole.manager, StaffRole.admin))


@router.post("/owners/{customer_id}/notes")
def save_notes(staff: StaffDep, db: DatabaseDep, clock: Clock, customer_id: CustomerId,
               notes: Annotated[str | None, Form(max_length=NOTES_MAX * 2)] = None) -> Response:
    """Replaces the staff notes on the owner; an unchanged text is no action and writes nothing."""
    with db.transaction() as session:
        customer = owned(session, Customer, customer_id, staff, lock=True)
        if notes is None:
            raise HTTPException(status_code=422, detail="notes missing / 缺少备注内容")
        # browsers send textarea line breaks as CRLF, which would count twice against the limit
        cleaned = notes.replace("\r\n", "\n").strip()
        if len(cleaned) > NOTES_MAX:
            raise HTTPException(status_code=422, detail=f"notes longer than {NOTES_MAX} / 备注不能超过 {NOTES_MAX} 字")
        if cleaned != customer.notes:
            # lengths, not the text: the audit log should not become a second copy of personal data
            audit(session, staff, "owner.notes", customer_id=customer.id, target=f"customer:{customer.id}", now=clock(),
                  before_length=len(customer.notes or ""), after_length=len(cleaned))
            customer.notes = cleaned
    return RedirectResponse(f"/console/owners/{customer_id}?saved=notes", status_code=303)


@router.post("/owners/{customer_id}/tier")
def change_tier(staff: StaffDep, db: DatabaseDep, clock: Clock, customer_id: CustomerId,
                tier: Annotated[str | None, Form(max_length=8)] = None) -> Response:
    """Re-tiers the owner (domain.md: keep tiers current); managers and admins only."""
    with db.transaction() as session:
        customer = owned(session, Customer, customer_id, staff, lock=True)
        # after the ownership check: another dealer's owner is 404 for everyone, never a telling 403
        if staff.role not in (StaffRole.manager, StaffRole.admin):
            raise HTTPException(status_code=403, detail="managers and admins only / 仅经理和管理员可修改")
        if tier not in TIERS:
            raise HTTPException(status_code=422, detail="tier must be A, B or C / 等级只能是 A、B 或 C")
        if tier != customer.tier:
            audit(session, staff, "owner.tier", customer_id=customer.id, target=f"customer:{customer.id}", now=clock(),
                  before=customer.tier, after=tier)
            customer.tier = tier
    return RedirectResponse(f"/console/owners/{customer_id}?saved=tier", status_code=303)
