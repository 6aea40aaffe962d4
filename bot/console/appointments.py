"""Console pages: the workshop's appointments, one day per page, and what staff do with them.

The day view is a grid: a column per bay (dealer config `bays`), a row per slot (`slot_minutes`) over the
opening hours, each appointment in its bay spanning the rows it takes; under it the capacity used per bay
and for the day, and the day's cancelled appointments apart. Appointments outside the opening hours (booked
before the hours changed, or on a day now closed) widen the grid rather than vanish.

Staff confirm, move or cancel an appointment (plain forms, POST + 303 back). Each change tells the owner in
their language (flows/templates/staff_appointment.*.yml) on the channel they last wrote on, and writes an
audit row. An owner with no conversation cannot be told: the change still happens and staff see a warning,
so they can phone instead. A move is checked like an owner's booking: the opening hours and capacity of
flows/calendar.py, then a bay free for the whole service, under the same per-dealer lock the bot books
under (bot/effects.py), so staff and bot cannot both take the last bay.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from bot import conversation_status, effects, outbound
from bot.console import scope, text
from bot.console.auth import Clock, CurrentStaff, StaffDep
from bot.console.rendering import render
from bot.console.scope import Refused, page_router
from bot.dealer_config import DayHours, DealerConfig
from bot.messages import Reply
from bot.models import Appointment, Conversation, Customer, Dealer, Vehicle
from flows import calendar, templates
from flows.turn import Booked

router = page_router()

ACTIVE = tuple(effects.ACTIVE)  # booked, confirmed: the statuses that hold a bay
CANCELLED = "cancelled"
NOTIFY_KIND = "appointment_update"  # Outbox.kind: not care, so neither quiet hours nor the weekly cap hold it
ACTIONS = ("confirm", "reschedule", "cancel")
MAX_DAYS_AWAY = 3660  # a day further than ten years from today is a typo, not a plan
MAX_ROWS = 1000  # one dealer's day never has this many; a guard, not a page size
SUGGESTIONS = 6


@dataclass(frozen=True, slots=True)
class Shop:
    """The dealer's rules the pages need: its config and its time zone."""

    config: DealerConfig
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class Item:
    """One appointment as staff read it."""

    id: int
    reference: str
    customer_id: int
    owner: str
    plate: str
    service: str  # the service's name in the viewer's language
    status: str
    starts_at: datetime
    ends_at: datetime
    bay: int
    notes: str
    pickup: bool = False
    mileage: int | None = None

    @property
    def active(self) -> bool:
        return self.status != CANCELLED

    @property
    def movable(self) -> bool:
        return self.status in ACTIVE

    @property
    def minutes(self) -> int:
        return max(1, int((self.ends_at - self.starts_at).total_seconds() // 60))


@dataclass(slots=True)
class Block:
    """A cell of the grid spanning rows [first, end): one appointment, or several overlapping in one bay."""

    items: list[Item]
    first: int
    end: int

    @property
    def rowspan(self) -> int:
        return self.end - self.first

    @property
    def conflict(self) -> bool:
        return len(self.items) > 1


@dataclass(frozen=True, slots=True)
class Cell:
    """What a bay shows in one row: a block starting there, a row a block above covers, or nothing."""

    block: Block | None = None
    covered: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    starts_at: datetime  # UTC; templates show it with local()
    open: bool
    cells: list[Cell]


@dataclass(frozen=True, slots=True)
class Load:
    """Capacity used: appointments and their minutes against the minutes open (of one bay, or all)."""

    bay: int | None  # None: the whole day
    count: int
    minutes: int
    open_minutes: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.minutes / self.open_minutes) if self.open_minutes else None


@dataclass(frozen=True, slots=True)
class DayView:
    day: date
    hours: DayHours | None
    holiday: bool
    bays: list[int]
    rows: list[Row]
    loads: list[Load]
    total: Load
    cancelled: list[Item] = field(default_factory=list)

    @property
    def previous(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def next(self) -> date:
        return self.day + timedelta(days=1)


# -- the day view ----------------------------------------------------------------------------------


@router.get("/appointments", response_class=HTMLResponse)
def day_view(request: Request, staff: StaffDep, clock: Clock, day: str | None = None, done: str | None = None,
             unreached: str | None = None) -> HTMLResponse:
    now = clock()
    with request.app.state.db.sessions() as session:
        shop = _shop(session, staff.dealer_id)
        today = now.astimezone(shop.zone).date()
        wanted = parse_day(day, today)
        shown = wanted or today
        start, end = _day_bounds(shown, shop.zone)
        items = _items(session, staff, shop, Appointment.starts_at < end, Appointment.ends_at > start)
    view = build_day(shop.config, shop.zone, shown, items)
    # a bad ?day= shows today, says so, and answers 422 so scripts notice too
    return render(request, "appointments.html", staff=staff, now=now, view=view, today=today, bad_day=wanted is None,
                  notice=_notice(done), unreached=unreached == "1", status_code=200 if wanted else 422)


def parse_day(raw: str | None, today: date) -> date | None:
    """The day asked for (today when none is); None when it is not a date or absurdly far away."""
    if not raw:
        return today
    if len(raw) > 32:  # no date is this long; don't hand the parser a megabyte
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return day if abs((day - today).days) <= MAX_DAYS_AWAY else None


def build_day(config: DealerConfig, zone: ZoneInfo, day: date, items: list[Item]) -> DayView:
    """The grid, capacity and cancelled list of one local day, from that day's appointments."""
    shown = [item for item in items if item.active]
    holiday = day in config.holidays
    hours = None if holiday else config.hours.get(day.weekday())
    open_at, close_at = _opening(day, hours, zone)
    bays = list(range(1, max([config.bays, *(item.bay for item in shown)]) + 1))
    step = timedelta(minutes=config.slot_minutes)
    starts = _slot_starts(day, zone, open_at, close_at, shown, step)
    by_bay = {bay: _bay_cells(starts, step, [item for item in shown if item.bay == bay]) for bay in bays}
    rows = [
        Row(starts_at=start, open=open_at is not None and close_at is not None and open_at <= start < close_at,
            cells=[by_bay[bay][k] for bay in bays])
        for k, start in enumerate(starts)
    ]
    open_minutes = max(0, int((close_at - open_at).total_seconds() // 60)) if open_at and close_at else 0
    day_start, day_end = _day_bounds(day, zone)
    loads = [_load(bay, [i for i in shown if i.bay == bay], day_start, day_end, open_minutes if bay <= config.bays else 0)
             for bay in bays]
    total = Load(None, sum(load.count for load in loads), sum(load.minutes for load in loads), open_minutes * config.bays)
    cancelled = [item for item in items if not item.active]
    return DayView(day, hours, holiday, bays, rows, loads, total, cancelled)


def _opening(day: date, hours: DayHours | None, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    if hours is None:
        return None, None
    # UTC from here on: arithmetic on local times would go wrong on a daylight-saving day
    return (datetime.combine(day, hours.open, zone).astimezone(UTC), datetime.combine(day, hours.close, zone).astimezone(UTC))


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day as a UTC interval [start, end)."""
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end


def _slot_starts(day: date, zone: ZoneInfo, open_at: datetime | None, close_at: datetime | None, shown: list[Item],
                 step: timedelta) -> list[datetime]:
    """The rows: slots over the opening hours, widened to every appointment of the day; none when closed and empty."""
    day_start, day_end = _day_bounds(day, zone)
    lows = ([open_at] if open_at else []) + [max(item.starts_at, day_start) for item in shown]
    highs = ([close_at] if close_at else []) + [min(item.ends_at, day_end) for item in shown]
    if not lows:
        return []
    anchor = open_at or day_start  # the grid counts from opening time, like the bot's (flows/calendar.grid)
    first = max(anchor + step * ((min(lows) - anchor) // step), day_start)
    count = max(1, -((first - max(highs)) // step))  # ceiling division
    return [first + step * k for k in range(count)]


def _bay_cells(starts: list[datetime], step: timedelta, items: list[Item]) -> list[Cell]:
    cells = [Cell() for _ in starts]
    if not starts:
        return cells
    for block in _blocks(items, starts[0], step, len(starts)):
        cells[block.first] = Cell(block=block)
        for k in range(block.first + 1, block.end):
            cells[k] = Cell(covered=True)
    return cells


def _blocks(items: list[Item], first: datetime, step: timedelta, count: int) -> list[Block]:
    """One bay's appointments as row spans; overlapping ones (a double booking) share one block, flagged."""
    blocks: list[Block] = []
    for item in sorted(items, key=lambda i: (i.starts_at, i.id)):
        top = min(max((item.starts_at - first) // step, 0), count - 1)
        bottom = min(max(-((first - item.ends_at) // step), top + 1), count)
        if blocks and top < blocks[-1].end:
            blocks[-1].items.append(item)
            blocks[-1].end = max(blocks[-1].end, bottom)
        else:
            blocks.append(Block([item], top, bottom))
    return blocks


def _load(bay: int, items: list[Item], day_start: datetime, day_end: datetime, open_minutes: int) -> Load:
    # minutes are counted within the day, so a job running past midnight is shared between its days
    minutes = sum(int((min(i.ends_at, day_end) - max(i.starts_at, day_start)).total_seconds() // 60) for i in items)
    return Load(bay, len(items), minutes, open_minutes)


# -- one appointment -------------------------------------------------------------------------------


@router.get("/appointments/{appointment_id}", response_class=HTMLResponse)
def detail(request: Request, appointment_id: int, staff: StaffDep, clock: Clock, done: str | None = None,
           unreached: str | None = None) -> HTMLResponse:
    return _detail_page(request, staff, appointment_id, now=clock(), notice=_notice(done), unreached=unreached == "1")


def _detail_page(request: Request, staff: CurrentStaff, appointment_id: int, *, now: datetime, notice: str | None = None,
                 unreached: bool = False, error: str | None = None, form: dict[str, str] | None = None,
                 status_code: int = 200) -> HTMLResponse:
    with request.app.state.db.sessions() as session:
        appointment = scope.owned(session, Appointment, appointment_id, staff)
        shop = _shop(session, staff.dealer_id)
        item = _items(session, staff, shop, Appointment.id == appointment.id)[0]
        suggestions = _suggestions(session, staff.dealer_id, shop, item, now) if item.movable else []
    local = item.starts_at.astimezone(shop.zone)
    # what staff typed comes back after a refusal; the rest shows the appointment as it is
    defaults = {"date": local.date().isoformat(), "time": local.strftime("%H:%M"), "bay": "", "reason": ""}
    form = defaults | {name: value for name, value in (form or {}).items() if value}
    return render(request, "appointment.html", staff=staff, now=now, item=item, day=local.date(), notice=notice,
                  unreached=unreached, error=error, form=form, bays=list(range(1, shop.config.bays + 1)),
                  suggestions=suggestions, status_code=status_code)


def _suggestions(session: Session, dealer_id: int, shop: Shop, item: Item, now: datetime) -> list[datetime]:
    """Free starts near the appointment's own time, as a hint for moving it."""
    cal = _calendar(session, dealer_id, shop, now, item.starts_at, days=calendar.SEARCH_DAYS + 1, ignore=item.id)
    local = item.starts_at.astimezone(shop.zone)
    return calendar.free_slots(cal, item.minutes, local.date(), at=local.time(), limit=SUGGESTIONS,
                               exclude=[item.starts_at])


# -- actions ---------------------------------------------------------------------------------------


@router.post("/appointments/{appointment_id}/confirm")
def confirm_route(request: Request, appointment_id: int, staff: StaffDep, clock: Clock,
                  back: Annotated[str, Form(max_length=10)] = "") -> Response:
    now = clock()
    return _act(request, staff, appointment_id, now, "confirm", back,
                lambda session, appointment, shop: confirm(session, staff, appointment, shop, now))


@router.post("/appointments/{appointment_id}/reschedule")
def reschedule_route(
    request: Request,
    appointment_id: int,
    staff: StaffDep,
    clock: Clock,
    date_: Annotated[str, Form(alias="date", max_length=20)] = "",
    time_: Annotated[str, Form(alias="time", max_length=20)] = "",
    bay: Annotated[str, Form(max_length=5)] = "",
    back: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    now = clock()
    form = {"date": date_, "time": time_, "bay": bay, "reason": ""}

    def move(session: Session, appointment: Appointment, shop: Shop) -> bool:
        start, wanted_bay = parse_move(date_, time_, bay, shop.zone)
        return reschedule(session, staff, appointment, shop, now, start, wanted_bay)

    return _act(request, staff, appointment_id, now, "reschedule", back, move, form=form, calendar_lock=True)


@router.post("/appointments/{appointment_id}/cancel")
def cancel_route(request: Request, appointment_id: int, staff: StaffDep, clock: Clock,
                 reason: Annotated[str, Form(max_length=500)] = "", back: Annotated[str, Form(max_length=10)] = "") -> Response:
    now = clock()
    return _act(request, staff, appointment_id, now, "cancel", back,
                lambda session, appointment, shop: cancel(session, staff, appointment, shop, now, reason),
                form={"reason": reason})


Action = Callable[[Session, Appointment, Shop], bool]


def _act(request: Request, staff: CurrentStaff, appointment_id: int, now: datetime, name: str, back: str, action: Action,
         *, form: dict[str, str] | None = None, calendar_lock: bool = False) -> Response:
    """Runs one action in one transaction and goes back (303); a refusal shows the appointment with why."""
    try:
        with request.app.state.db.transaction() as session:
            if calendar_lock:
                # before the row lock, in the order the bot takes them, so the two never wait on each other
                effects.lock_calendar(session, staff.dealer_id)
            appointment = scope.owned(session, Appointment, appointment_id, staff, lock=True)
            shop = _shop(session, staff.dealer_id)
            notified = action(session, appointment, shop)
            day = appointment.starts_at.astimezone(shop.zone).date()
    except Refused as refused:
        # the transaction rolled back: nothing changed, nothing was sent
        return _detail_page(request, staff, appointment_id, now=now, error=_say(staff.language, refused), form=form,
                            status_code=refused.status_code)
    query = {"done": name, **({} if notified else {"unreached": "1"})}
    if back == "day":
        return RedirectResponse(f"/console/appointments?{urlencode({'day': day.isoformat(), **query})}", status_code=303)
    return RedirectResponse(f"/console/appointments/{appointment_id}?{urlencode(query)}", status_code=303)


def confirm(session: Session, staff: CurrentStaff, appointment: Appointment, shop: Shop, now: datetime) -> bool:
    """Booked -> confirmed; tells the owner. Returns whether the owner could be told."""
    _require(appointment, ("booked",), "appt_err_confirm")
    appointment.status = "confirmed"
    notified = _notify(session, staff, appointment, shop, "confirmed", now)
    scope.audit(session, staff, "appointment.confirm", customer_id=appointment.customer_id, target=appointment.reference,
                now=now, starts_at=appointment.starts_at.isoformat(), notified=notified)
    return notified


def reschedule(session: Session, staff: CurrentStaff, appointment: Appointment, shop: Shop, now: datetime, start: datetime,
               bay: int | None) -> bool:
    """Moves the appointment (same length) to `start`, in `bay` or a free one; tells the owner when the time moved."""
    _require(appointment, ACTIVE, "appt_err_move")
    if start == appointment.starts_at and bay in (None, appointment.bay):
        raise Refused(409, "appt_err_unchanged")
    if bay is not None and not 1 <= bay <= shop.config.bays:
        raise Refused(422, "appt_err_bay", bays=shop.config.bays)
    minutes = max(1, int((appointment.ends_at - appointment.starts_at).total_seconds() // 60))
    end = start + timedelta(minutes=minutes)
    cal = _calendar(session, staff.dealer_id, shop, now, start, days=1, ignore=appointment.id)
    why = calendar.why_not(cal, start, minutes)
    if why is not None:
        raise Refused(409 if why == calendar.FULL else 422, f"appt_err_{why}")
    chosen = _choose_bay(bay, appointment.bay, shop.config.bays, _taken_bays(session, staff.dealer_id, start, end,
                                                                             appointment.id))
    before, bay_before = appointment.starts_at, appointment.bay
    appointment.starts_at, appointment.ends_at, appointment.bay = start, end, chosen
    # a move between bays only is the workshop's business; the owner hears of a new time
    moved = start != before
    notified = moved and _notify(session, staff, appointment, shop, "rescheduled", now)
    scope.audit(session, staff, "appointment.reschedule", customer_id=appointment.customer_id, target=appointment.reference,
                now=now, starts_at_before=before.isoformat(), starts_at=start.isoformat(), bay_before=bay_before, bay=chosen,
                notified=notified)
    return notified or not moved


def cancel(session: Session, staff: CurrentStaff, appointment: Appointment, shop: Shop, now: datetime, reason: str) -> bool:
    """Booked or confirmed -> cancelled, with an optional reason the owner reads; tells the owner."""
    _require(appointment, ACTIVE, "appt_err_cancel")
    before = appointment.status
    reason = " ".join(reason.split())  # one line: it goes into an SMS sentence
    appointment.status = CANCELLED
    key = "cancelled_reason" if reason else "cancelled"
    notified = _notify(session, staff, appointment, shop, key, now, reason=reason)
    scope.audit(session, staff, "appointment.cancel", customer_id=appointment.customer_id, target=appointment.reference,
                now=now, status_before=before, reason=reason, notified=notified)
    return notified


def parse_move(raw_date: str, raw_time: str, raw_bay: str, zone: ZoneInfo) -> tuple[datetime, int | None]:
    """The new start (dealer-local date and time, as UTC) and bay (None: any free one) from the form, or 422."""
    try:
        day = date.fromisoformat(raw_date.strip())
        clock = time.fromisoformat(raw_time.strip())
    except ValueError:
        raise Refused(422, "appt_err_when") from None
    try:
        bay = int(raw_bay) if raw_bay.strip() else None
    except ValueError:
        raise Refused(422, "appt_err_bay_number") from None
    start = datetime.combine(day, clock.replace(second=0, microsecond=0, tzinfo=None), zone).astimezone(UTC)
    return start, bay


def _require(appointment: Appointment, allowed: Collection[str], key: str) -> None:
    if appointment.status not in allowed:
        raise Refused(409, key, status=f"appt_status_{appointment.status}")


def _choose_bay(wanted: int | None, current: int, bays: int, taken: set[int]) -> int:
    """The bay asked for if free; else the appointment's own if free; else the first free one."""
    if wanted is not None:
        if wanted in taken:
            raise Refused(409, "appt_err_bay_taken", bay=wanted)
        return wanted
    if current <= bays and current not in taken:
        return current
    free = [bay for bay in range(1, bays + 1) if bay not in taken]
    if not free:
        raise Refused(409, "appt_err_full")
    return free[0]


def _taken_bays(session: Session, dealer_id: int, start: datetime, end: datetime, ignore: int) -> set[int]:
    return set(session.scalars(
        select(Appointment.bay).where(Appointment.dealer_id == dealer_id, Appointment.status.in_(ACTIVE),
                                      Appointment.starts_at < end, Appointment.ends_at > start, Appointment.id != ignore)
    ))


def _calendar(session: Session, dealer_id: int, shop: Shop, now: datetime, around: datetime, *, days: int,
              ignore: int) -> calendar.Calendar:
    """The bot's calendar of the days around `around`, without the appointment being moved."""
    rows = session.execute(
        select(Appointment.starts_at, Appointment.ends_at, Appointment.id).where(
            Appointment.dealer_id == dealer_id, Appointment.status.in_(ACTIVE), Appointment.id != ignore,
            Appointment.ends_at > min(around, now) - timedelta(days=1), Appointment.starts_at < around + timedelta(days=days + 1),
        )
    ).all()
    booked = tuple(Booked(row.starts_at, row.ends_at, row.id) for row in rows)
    return calendar.Calendar(shop.config, shop.zone.key, booked, now)


# -- telling the owner -----------------------------------------------------------------------------


def _notify(session: Session, staff: CurrentStaff, appointment: Appointment, shop: Shop, key: str, now: datetime,
            **params: str) -> bool:
    """Queues the owner's message on their last channel; False when they have no conversation or channel."""
    conversation = session.scalars(
        select(Conversation)
        .where(Conversation.dealer_id == appointment.dealer_id, Conversation.customer_id == appointment.customer_id)
        .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        .limit(1)
    ).first()
    if conversation is None:
        return False
    lang = _owner_language(session, appointment.customer_id)
    body = owner_text(key, lang, appointment, shop, **params)
    sender = scope.actor(staff)
    message = outbound.queue(
        session, conversation, Reply(body), kind=NOTIFY_KIND, sender=sender, now=now,
        # one per change: a second move of the same appointment is another message
        dedupe_key=f"appt:{appointment.id}:{key}:{appointment.starts_at.isoformat()}:{now.isoformat()}",
        data={"appointment_id": appointment.id, "reference": appointment.reference, "action": key},
    )
    if message is None:
        return False
    if conversation.status in conversation_status.HANDED_OFF:  # the person handling the owner sees it too
        conversation_status.record_event(session=session, conversation=conversation, kind="message", actor=sender,
                                         data={"message_id": message.id})
    return True


def owner_text(key: str, lang: str, appointment: Appointment, shop: Shop, **params: str) -> str:
    """The owner's message: 您的预约（编号 A-…）已确认：11月24日 10:00，小保养。…"""
    local = appointment.starts_at.astimezone(shop.zone)
    month = templates.labels("staff_appointment.months", lang)[local.month - 1]
    when = templates.text("staff_appointment.when", lang, month=month, day=local.day, time=local.strftime("%H:%M"))
    service = service_name(shop.config, appointment.service_type, lang)
    return templates.text(f"staff_appointment.{key}", lang, reference=appointment.reference, when=when, service=service,
                          **params)


def _owner_language(session: Session, customer_id: int) -> str:
    lang = session.scalar(select(Customer.language).where(Customer.id == customer_id))
    return lang if lang in templates.LANGUAGES else templates.DEFAULT_LANGUAGE


# -- small pieces ----------------------------------------------------------------------------------


def _shop(session: Session, dealer_id: int) -> Shop:
    dealer = session.get_one(Dealer, dealer_id)
    return Shop(DealerConfig.model_validate(dealer.config or {}), ZoneInfo(dealer.timezone or "Asia/Shanghai"))


def service_name(config: DealerConfig, code: str, lang: str) -> str:
    """The service's name in that language; its code when the dealer no longer offers it."""
    service = next((s for s in config.services if s.code == code), None)
    if service is None:
        return code
    return service.name_en if lang == "en" else service.name_zh


def _items(session: Session, staff: CurrentStaff, shop: Shop, *where: ColumnElement[bool]) -> list[Item]:
    rows = session.execute(
        select(Appointment, Customer.name, Vehicle.plate)
        .join(Customer, (Customer.id == Appointment.customer_id) & (Customer.dealer_id == Appointment.dealer_id))
        .outerjoin(Vehicle, Vehicle.id == Appointment.vehicle_id)
        .where(Appointment.dealer_id == staff.dealer_id, *where)
        .order_by(Appointment.starts_at, Appointment.id)
        .limit(MAX_ROWS)
    ).all()
    return [
        Item(id=a.id, reference=a.reference, customer_id=a.customer_id, owner=name or "", plate=plate or "",
             service=service_name(shop.config, a.service_type, staff.language), status=a.status, starts_at=a.starts_at,
             ends_at=a.ends_at, bay=a.bay, notes=a.notes or "", pickup=a.pickup, mileage=a.mileage)
        for a, name, plate in rows
    ]


def _notice(done: str | None) -> str | None:
    """The text key of "what just happened" after a 303; only the three actions (it comes from the URL)."""
    return f"appt_done_{done}" if done in ACTIONS else None


def _say(lang: str, refused: Refused) -> str:
    """A refusal in the viewer's language; a parameter naming a text key (a status) is translated too."""
    table = text.TEXT[lang]
    params = {name: table.get(value, value) if isinstance(value, str) else value for name, value in refused.params.items()}
    return table.get(refused.key, refused.key).format(**params)


text.register({
    "zh": {
        "appt_title": "预约",
        "appt_one": "预约",
        "appt_day": "日期",
        "appt_show": "查看",
        "appt_today": "今天",
        "appt_previous": "前一天",
        "appt_next": "后一天",
        "appt_bad_day": "日期格式不正确（应为 YYYY-MM-DD），已显示今天。",
        "appt_hours": "营业时间",
        "appt_closed": "当天不营业",
        "appt_holiday": "当天是休息日",
        "appt_time": "时间",
        "appt_bay": "工位",
        "appt_grid": "各工位预约",
        "appt_empty": "当天没有预约。",
        "appt_outside_hours": "营业时间外",
        "appt_double_booked": "工位冲突：以下预约时间重叠",
        "appt_capacity": "产能",
        "appt_count": "预约数",
        "appt_minutes": "已约 / 可用（分钟）",
        "appt_used": "占用率",
        "appt_whole_day": "全天",
        "appt_cancelled_list": "已取消的预约",
        "appt_reference": "预约号",
        "appt_owner": "车主",
        "appt_no_name": "（未留姓名）",
        "appt_plate": "车牌",
        "appt_service": "项目",
        "appt_status": "状态",
        "appt_when": "预约时间",
        "appt_duration": "时长",
        "appt_minutes_unit": "分钟",
        "appt_pickup": "上门取送车",
        "appt_yes": "需要",
        "appt_no": "不需要",
        "appt_mileage": "里程（公里）",
        "appt_notes": "车主备注",
        "appt_back_to_day": "返回当天预约",
        "appt_confirm": "确认预约",
        "appt_reschedule": "改期",
        "appt_new_date": "新日期",
        "appt_new_time": "新时间",
        "appt_any_bay": "自动分配",
        "appt_move": "改到该时间",
        "appt_free_hint": "附近可预约的时间",
        "appt_cancel": "取消预约",
        "appt_cancel_reason": "取消原因（会发给车主，可不填）",
        "appt_cancel_go": "确认取消",
        "appt_done_confirm": "预约已确认。",
        "appt_done_reschedule": "预约已改期。",
        "appt_done_cancel": "预约已取消。",
        "appt_unreached": "未能通知车主（该车主没有可用的会话或渠道），请电话联系车主。",
        "appt_status_booked": "已预约",
        "appt_status_confirmed": "已确认",
        "appt_status_cancelled": "已取消",
        "appt_status_done": "已完成",
        "appt_status_no_show": "未到店",
        "appt_err_confirm": "只有“已预约”的预约可以确认（当前状态：{status}）。",
        "appt_err_move": "只有“已预约”或“已确认”的预约可以改期（当前状态：{status}）。",
        "appt_err_cancel": "只有“已预约”或“已确认”的预约可以取消（当前状态：{status}）。",
        "appt_err_unchanged": "新的时间和工位与原来相同，无需改期。",
        "appt_err_when": "请填写正确的日期（YYYY-MM-DD）和时间（HH:MM）。",
        "appt_err_bay_number": "工位必须是数字。",
        "appt_err_bay": "工位编号应在 1 到 {bays} 之间。",
        "appt_err_bay_taken": "{bay} 号工位在该时段已有预约，请换一个工位或时间。",
        "appt_err_past": "该时间已经过去，请选择以后的时间。",
        "appt_err_closed_day": "当天不营业，请选择其他日期。",
        "appt_err_holiday": "当天是休息日，请选择其他日期。",
        "appt_err_outside_hours": "该时间不在营业时间内（或项目在下班前做不完）。",
        "appt_err_full": "该时段所有工位都已约满，请选择其他时间。",
    },
    "en": {
        "appt_title": "Appointments",
        "appt_one": "Appointment",
        "appt_day": "Day",
        "appt_show": "Show",
        "appt_today": "Today",
        "appt_previous": "Previous day",
        "appt_next": "Next day",
        "appt_bad_day": "That is not a day (use YYYY-MM-DD); showing today.",
        "appt_hours": "Opening hours",
        "appt_closed": "Closed that day",
        "appt_holiday": "Holiday",
        "appt_time": "Time",
        "appt_bay": "Bay",
        "appt_grid": "Appointments by bay",
        "appt_empty": "No appointments that day.",
        "appt_outside_hours": "Outside opening hours",
        "appt_double_booked": "Bay conflict: these appointments overlap",
        "appt_capacity": "Capacity",
        "appt_count": "Appointments",
        "appt_minutes": "Booked / open (minutes)",
        "appt_used": "Used",
        "appt_whole_day": "Whole day",
        "appt_cancelled_list": "Cancelled appointments",
        "appt_reference": "Reference",
        "appt_owner": "Owner",
        "appt_no_name": "(no name)",
        "appt_plate": "Plate",
        "appt_service": "Service",
        "appt_status": "Status",
        "appt_when": "Time",
        "appt_duration": "Duration",
        "appt_minutes_unit": "min",
        "appt_pickup": "Pick-up",
        "appt_yes": "Yes",
        "appt_no": "No",
        "appt_mileage": "Mileage (km)",
        "appt_notes": "Owner's notes",
        "appt_back_to_day": "Back to the day",
        "appt_confirm": "Confirm",
        "appt_reschedule": "Reschedule",
        "appt_new_date": "New date",
        "appt_new_time": "New time",
        "appt_any_bay": "Any free bay",
        "appt_move": "Move",
        "appt_free_hint": "Free times nearby",
        "appt_cancel": "Cancel appointment",
        "appt_cancel_reason": "Reason (sent to the owner; optional)",
        "appt_cancel_go": "Cancel it",
        "appt_done_confirm": "Appointment confirmed.",
        "appt_done_reschedule": "Appointment moved.",
        "appt_done_cancel": "Appointment cancelled.",
        "appt_unreached": "The owner could not be told (no conversation or channel on file); please phone them.",
        "appt_status_booked": "Booked",
        "appt_status_confirmed": "Confirmed",
        "appt_status_cancelled": "Cancelled",
        "appt_status_done": "Done",
        "appt_status_no_show": "No-show",
        "appt_err_confirm": "Only a booked appointment can be confirmed (it is: {status}).",
        "appt_err_move": "Only a booked or confirmed appointment can be moved (it is: {status}).",
        "appt_err_cancel": "Only a booked or confirmed appointment can be cancelled (it is: {status}).",
        "appt_err_unchanged": "That is the time and bay it already has.",
        "appt_err_when": "Please give a valid date (YYYY-MM-DD) and time (HH:MM).",
        "appt_err_bay_number": "The bay must be a number.",
        "appt_err_bay": "Bays are numbered 1 to {bays}.",
        "appt_err_bay_taken": "Bay {bay} is taken at that time; pick another bay or time.",
        "appt_err_past": "That time has passed; pick a later one.",
        "appt_err_closed_day": "The workshop is closed that day; pick another day.",
        "appt_err_holiday": "That day is a holiday; pick another day.",
        "appt_err_outside_hours": "That time is outside opening hours (or the work would not finish before closing).",
        "appt_err_full": "Every bay is taken at that time; pick another time.",
    },
})
