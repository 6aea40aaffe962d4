"""A working day for the demo dealer's staff console: bookings, surveys, tickets, reminders, an inbox.

`load_console_demo(session, dealer, today=...)` runs once, in `dealercare demo load` (what `make run`
does) right after `bot.demo.load_demo`, on the owners, cars and repair orders it has just written, in
the same transaction. (Not inside load_demo: the tests that load the demo count every message and
booking in the database and expect its owners with no history.) It adds:

- appointments over today and the next three days (six to ten a day), each in a bay of its own for
  its whole service, inside the opening hours, and always leaving two bays free so that owners
  trying the simulator can still book;
- a satisfaction survey (CSAT, some NPS) after each repair order of the last six months, most of
  them answered; the three low answers each opened a complaint ticket, as flows/survey.py does;
- complaints in every status and class, one past its SLA, and roadside tickets;
- six months of reminders sent by SMS, about a third of the booking ones followed by a booking
  (done, in the past) within 14 days, so the reports' conversion chart shows a rate;
- two conversations waiting for a person, written as the pipeline writes them: a roadside case
  (urgent, first in the inbox) and a complaint, on the simulator channel so that whoever tries
  the demo can answer from the console and read the answer in the simulator.

The first owners stay untouched (FIRST_OWNERS_KEPT): tests and people trying the simulator start
with them, and they must find an empty history. Everything is drawn from a fixed seed relative to
`today` in the dealer's time zone; only what must be "a few minutes ago" follows the clock.
Stored times are aware UTC.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import conversation_status, effects
from bot.dealer_config import DealerConfig
from bot.messages import Reply
from bot.models import (
    Appointment,
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationStatus,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
    ServiceRecord,
    Staff,
    Survey,
    SurveyResponse,
    Ticket,
    TicketKind,
    TicketStatus,
    Vehicle,
)
from flows import complaint, roadside, templates
from flows.handoff import when_staff_answers
from flows.turn import AlertStaff, Context, Effect, OpenTicket, State, UpdateTicket
from scheduler import texts

SEED = 20240818
# tests and people trying the simulator use the first owners: they keep an empty history
FIRST_OWNERS_KEPT = 10
DAYS_AHEAD = 3  # appointments today and on the next three days
PER_DAY = (6, 10)
# bays the demo never fills at any moment: room for the bot's own bookings (bot/effects.py)
SPARE_BAYS = 2
HISTORY_DAYS = 180  # surveys, reminders and closed tickets over the last six months
# reminders stop a few days back, so the demo's own sends do not eat this week's care cap
RECENT_GAP_DAYS = 5
CONVERSION_DAYS = 14  # bot/console/report_queries.py: a booking this soon after a reminder counts
CONVERTED = 12  # repair orders that a booking after a reminder led to
WALK_IN_SHARE = 0.4  # of the other services: reminded too, but the owner came without booking
NPS_SHARE = 0.2
ANSWERED_SHARE = 0.75
CSAT_TOP, NPS_TOP = 5, 10

# reference prefixes apart from the bot's (B000123, C000123, R000123: message ids)
APPOINTMENT_PREFIX = "DEMO-A"
COMPLAINT_PREFIX = "DEMO-C"
ROADSIDE_PREFIX = "DEMO-R"

# departments as staff type them (the console suggests these: bot/console/tickets.py)
SERVICE_DEPT = "售后服务部"
CARE_DEPT = "客户关怀中心"
RESCUE_DEPT = "救援调度"

# service code, weight of the upcoming appointments
SERVICE_MIX = (
    ("minor_service", 30), ("major_service", 15), ("repair", 15), ("alignment", 10),
    ("detailing", 10), ("inspection", 8), ("bodywork", 8), ("first_service", 4),
)
APPOINTMENT_NOTES = (
    "顺便检查一下右前轮胎压", "客户要求等候取车", "上次反映空调有异味，请一并检查", "需要开具增值税发票",
    "客户自带机油", "请提前准备好刹车片", "",
)
MAINTENANCE = ("first_service", "minor_service", "major_service")
# repair order type -> the reminder that brought the owner in
BROUGHT_BY = {**{code: "maintenance" for code in MAINTENANCE}, "inspection": "inspection"}
REMINDER_NOTES = {"maintenance": "车主回复保养提醒预约", "inspection": "车主回复年检提醒预约"}

PRAISE = (
    "师傅很专业，讲解得很清楚", "服务顾问很耐心，点赞", "效率很高，比预计的早取车", "休息区很舒服，咖啡不错",
    "洗车洗得很干净", "价格透明，满意",
)


@dataclass(frozen=True, slots=True)
class Car:
    id: int
    plate: str
    mileage: int | None
    last_service_date: date | None
    insurance_due: date | None
    inspection_due: date | None
    warranty_until: date | None


@dataclass(frozen=True, slots=True)
class Owner:
    id: int
    name: str
    phone: str
    language: str
    cars: tuple[Car, ...]


@dataclass(frozen=True, slots=True)
class Order:
    """A closed repair order of a demo owner."""

    id: int
    customer_id: int
    vehicle_id: int
    service_type: str
    opened_on: date
    closed_at: datetime
    mileage: int | None
    advisor_id: int | None


@dataclass(frozen=True, slots=True)
class LowAnswer:
    """A low survey score: the complaint it opens (flows/survey.py) and where that complaint stands."""

    kind: str  # csat | nps
    score: int
    comment: str
    status: TicketStatus
    result: str = ""


# The three low answers, oldest first: they become service complaints (what flows/survey.py opens).
LOW_ANSWERS = (
    LowAnswer("csat", 2, "等待时间太长，说好一个小时，结果等了快三个小时", TicketStatus.closed,
              "已向您致歉并赠送一次免费洗车；车间已调整预约排班，保养预计时间会在接车时如实告知。"),
    LowAnswer("nps", 3, "结账时多了两项费用，事先没有跟我说明", TicketStatus.resolved,
              "经核实，多收的空调滤芯更换费 128 元已原路退回；今后增项施工前都会先征得您的同意。"),
    LowAnswer("csat", 3, "取车一拖再拖，也没有人主动通知我", TicketStatus.in_progress),
)


@dataclass(frozen=True, slots=True)
class TicketPlan:
    """A ticket the demo writes directly (not through a conversation)."""

    kind: TicketKind
    category: str  # as staff classified it
    text: str
    status: TicketStatus
    # opened this long before now; older than a day: that many days back, at `clock` (the working day)
    ago: timedelta
    department: str | None
    assignee: str | None  # staff username
    result: str = ""
    resolved_after: timedelta = timedelta(0)
    clock: time = time(10, 0)


TICKETS = (
    TicketPlan(TicketKind.complaint, "other", "停车场车位太少，周末来保养找了二十分钟才停好", TicketStatus.new,
               timedelta(minutes=35), None, None),
    TicketPlan(TicketKind.complaint, "product_quality", "空调出风口一直有异味，上次清洗过还是有", TicketStatus.acknowledged,
               timedelta(minutes=95), SERVICE_DEPT, "agent"),
    TicketPlan(TicketKind.complaint, "service", "取车时发现驾驶座上有油污", TicketStatus.resolved, timedelta(days=9),
               SERVICE_DEPT, "agent", "已为您免费做了座椅清洁护理，车间也加强了座椅套、方向盘套的防护，向您致歉。",
               timedelta(days=1), time(16, 40)),
    TicketPlan(TicketKind.complaint, "product_quality", "中控屏经常黑屏重启，导航用到一半就没了", TicketStatus.closed,
               timedelta(days=104), SERVICE_DEPT, "manager", "已升级车机系统软件并更换中控主机，经三天路试未再出现黑屏。",
               timedelta(days=4), time(11, 15)),
    TicketPlan(TicketKind.roadside, "battery", "车子打不着火了，在公司地库里", TicketStatus.resolved, timedelta(days=25),
               RESCUE_DEPT, "manager", "救援车已到现场搭电，车辆恢复正常；建议您近期到店检测一下电瓶。",
               timedelta(hours=1, minutes=10), time(18, 40)),
    TicketPlan(TicketKind.roadside, "breakdown", "开着开着水温报警了，已经靠边停车，在华南快速干线往北方向",
               TicketStatus.in_progress, timedelta(minutes=14), RESCUE_DEPT, "manager"),
)

# The two conversations waiting for a person: what the owner writes, in order.
ROADSIDE_CHAT = (
    "车在高速上爆胎了，怎么办",
    "在广园快速路往东方向，刚过科韵路立交",
    "好的，我已经在护栏外面等了",
)
COMPLAINT_CHAT = (
    "保养后发动机有异响，已经第二次了",
    "上次来修过一次，回去开了两天又响了。什么时候能安排师傅看看？",
)


def load_console_demo(session: Session, dealer: Dealer, *, today: date, now: datetime | None = None) -> None:
    """Adds the console's working day to the demo dealer's owners (see the module docstring)."""
    zone = ZoneInfo(dealer.timezone)
    demo = Demo(
        session=session,
        dealer=dealer,
        config=DealerConfig.model_validate(dealer.config or {}),
        zone=zone,
        today=today,
        now=now or demo_now(today, zone),
        rng=random.Random(SEED),
    )
    session.flush()
    demo.read()
    workshop = Workshop(demo)
    chat_owners = demo.chat_owners()
    demo.chatting = frozenset(owner.id for owner in chat_owners)
    others = [owner for owner in demo.owners if owner.id not in demo.chatting]
    appointments_ahead(demo, workshop, others)
    service_reminders(demo, workshop)
    other_reminders(demo)
    low = surveys(demo)
    survey_tickets(demo, low)
    tickets(demo, others)
    roadside_conversation(demo, chat_owners[0])
    complaint_conversation(demo, chat_owners[1])
    session.flush()


def demo_now(today: date, zone: ZoneInfo) -> datetime:
    """The clock the demo is written against: the real one when `today` is the dealer's today, else
    10:30 that morning (a demo loaded for another day, as tests do, stays the same every time)."""
    real = datetime.now(UTC)
    if real.astimezone(zone).date() == today:
        return real
    return datetime.combine(today, time(10, 30), zone).astimezone(UTC)


# -- what the demo already has --------------------------------------------------------------------


@dataclass
class Demo:
    """The demo dealer as this module reads and extends it, with one random stream for all of it."""

    session: Session
    dealer: Dealer
    config: DealerConfig
    zone: ZoneInfo
    today: date
    now: datetime
    rng: random.Random
    owners: list[Owner] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    staff: dict[str, int] = field(default_factory=dict)
    minutes: dict[str, int] = field(default_factory=dict)
    chatting: frozenset[int] = frozenset()  # the owners of the waiting conversations: no other tickets
    _counters: dict[str, int] = field(default_factory=dict)

    def read(self) -> None:
        """Loads the owners after the first few, their cars and repair orders, staff and services."""
        session, dealer_id = self.session, self.dealer.id
        customers = session.scalars(select(Customer).where(Customer.dealer_id == dealer_id).order_by(Customer.id)).all()
        kept = customers[FIRST_OWNERS_KEPT:]
        cars: dict[int, list[Car]] = {}
        vehicles = session.scalars(select(Vehicle).where(Vehicle.dealer_id == dealer_id).order_by(Vehicle.id))
        for v in vehicles:
            cars.setdefault(v.customer_id, []).append(
                Car(v.id, v.plate, v.mileage, v.last_service_date, v.insurance_due, v.inspection_due, v.warranty_until)
            )
        self.owners = [
            Owner(c.id, c.name, c.phone or "", c.language, tuple(cars.get(c.id, ()))) for c in kept if cars.get(c.id)
        ]
        ids = {owner.id for owner in self.owners}
        records = session.scalars(
            select(ServiceRecord).where(ServiceRecord.dealer_id == dealer_id).order_by(ServiceRecord.closed_at, ServiceRecord.id)
        )
        self.orders = [
            Order(r.id, r.customer_id, r.vehicle_id, r.service_type, r.opened_on, r.closed_at, r.mileage, r.advisor_id)
            for r in records
            if r.customer_id in ids and r.closed_at is not None
        ]
        staff = session.execute(select(Staff.username, Staff.id).where(Staff.dealer_id == dealer_id))
        self.staff = {row.username: row.id for row in staff}
        self.minutes = {service.code: service.minutes for service in self.config.services}

    def chat_owners(self) -> tuple[Owner, Owner]:
        """The roadside and the complaint owner: the last two Chinese-speaking ones, far from the first."""
        chinese = [owner for owner in self.owners if owner.language == "zh"]
        return chinese[-1], chinese[-2]

    def owner(self, customer_id: int) -> Owner:
        return next(owner for owner in self.owners if owner.id == customer_id)

    def reference(self, prefix: str) -> str:
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return f"{prefix}{self._counters[prefix]:04d}"

    def at(self, day: date, clock: time) -> datetime:
        """A local wall-clock time on a day, as aware UTC."""
        return datetime.combine(day, clock, self.zone).astimezone(UTC)

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def service_name(self, code: str, lang: str) -> str:
        service = next((s for s in self.config.services if s.code == code), None)
        if service is None:
            return texts.text("default_service", lang)
        return service.name_en if lang == "en" else service.name_zh

    def provider_id(self) -> str:
        # what Twilio hands back for a sent message: SM and 32 hex digits
        return "SM" + "".join(self.rng.choices("0123456789abcdef", k=32))


# -- the workshop ------------------------------------------------------------------------------------


@dataclass
class Workshop:
    """The bays' bookings as the demo lays them out: never two in one bay at once, always spare bays."""

    demo: Demo
    taken: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def starts(self, day: date, minutes: int, *, until: datetime | None = None) -> list[datetime]:
        """The slot starts of a day at which a service of `minutes` ends by closing time (or `until`)."""
        config = self.demo.config
        hours = config.hours.get(day.weekday())
        if hours is None or day in config.holidays:
            return []
        close = self.demo.at(day, hours.close)
        if until is not None:
            close = min(close, until)
        step = timedelta(minutes=config.slot_minutes)
        start, found = self.demo.at(day, hours.open), []
        while start + timedelta(minutes=minutes) <= close:
            found.append(start)
            start += step
        return found

    def book(self, day: date, minutes: int, *, until: datetime | None = None) -> tuple[datetime, datetime, int] | None:
        """Picks a free start and bay at random (spreading the day over the bays), or None if none is left."""
        starts = self.starts(day, minutes, until=until)
        self.demo.rng.shuffle(starts)
        for start in starts:
            end = start + timedelta(minutes=minutes)
            bay = self.free_bay(start, end)
            if bay is not None:
                self.taken.setdefault(bay, []).append((start, end))
                return start, end, bay
        return None

    def free_bay(self, start: datetime, end: datetime) -> int | None:
        busy = {bay for bay, spans in self.taken.items() if any(s < end and start < e for s, e in spans)}
        if len(busy) >= self.demo.config.bays - SPARE_BAYS:
            return None
        free = [bay for bay in range(1, self.demo.config.bays + 1) if bay not in busy]
        return self.demo.rng.choice(free)


# -- appointments ------------------------------------------------------------------------------------


def appointments_ahead(demo: Demo, workshop: Workshop, owners: list[Owner]) -> None:
    """Six to ten bookings a day from today on: mostly booked, some confirmed, one or two cancelled."""
    rng = demo.rng
    pool = _owner_pool(rng, owners)
    codes, weights = zip(*SERVICE_MIX)
    added: list[Appointment] = []
    for offset in range(DAYS_AHEAD + 1):
        day = demo.today + timedelta(days=offset)
        for _ in range(rng.randint(*PER_DAY)):
            service = rng.choices(codes, weights=weights)[0]
            slot = workshop.book(day, demo.minutes.get(service, 60))
            if slot is None:
                continue
            owner = next(pool)
            car = rng.choice(owner.cars)
            start, end, bay = slot
            booked_on = day - timedelta(days=rng.randint(1, 6))
            created = min(demo.at(booked_on, time(rng.randint(9, 19), rng.randrange(60))), demo.now - timedelta(hours=1))
            pickup = demo.config.pickup_offered and rng.random() < 0.15
            appointment = Appointment(
                dealer_id=demo.dealer.id,
                reference=demo.reference(APPOINTMENT_PREFIX),
                customer_id=owner.id,
                vehicle_id=car.id,
                service_type=service,
                starts_at=start,
                ends_at=end,
                bay=bay,
                status="confirmed" if rng.random() < 0.3 else "booked",
                pickup=pickup,
                notes="客户要求上门取车" if pickup else rng.choice(APPOINTMENT_NOTES),
                created_at=created,
            )
            added.append(appointment)
    for appointment in rng.sample(added, rng.choice((1, 2))):
        appointment.status = "cancelled"
    for appointment in added:
        # earlier today: the car has been and gone, or is in the bay now
        if appointment.status != "cancelled" and appointment.starts_at <= demo.now:
            appointment.status = "done" if appointment.ends_at <= demo.now else "confirmed"
    demo.session.add_all(added)


def _owner_pool(rng: random.Random, owners: list[Owner]) -> Iterator[Owner]:
    """Owners in random order, each once before anyone comes round again."""
    while True:
        order = list(owners)
        rng.shuffle(order)
        yield from order


# -- reminders ------------------------------------------------------------------------------------------


def service_reminders(demo: Demo, workshop: Workshop) -> None:
    """The reminders before the services of the last months: some owners booked in reply (an appointment,
    done, on the day of the repair order), the others came in without booking."""
    rng = demo.rng
    first = demo.today - timedelta(days=HISTORY_DAYS - 12)
    last = demo.today - timedelta(days=RECENT_GAP_DAYS)
    candidates = [o for o in demo.orders if o.service_type in BROUGHT_BY and first <= o.opened_on <= last]
    booked = {o.id for o in rng.sample(candidates, min(CONVERTED, len(candidates)))}
    for order in candidates:
        slot = workshop.book(order.opened_on, demo.minutes.get(order.service_type, 60), until=order.closed_at) \
            if order.id in booked else None
        if slot is None and rng.random() >= WALK_IN_SHARE:
            continue
        code = BROUGHT_BY[order.service_type]
        sent_day = order.opened_on - timedelta(days=rng.randint(6, 12))
        sent = _sent_reminder(demo, demo.owner(order.customer_id), code, _car(demo, order), due=order.opened_on,
                              sent_day=sent_day, key=f"demo:{code}:{order.vehicle_id}:{order.opened_on}")
        if slot is not None:
            _booked_after(demo, order, code, sent, slot)


def _booked_after(demo: Demo, order: Order, code: str, sent: datetime, slot: tuple[datetime, datetime, int]) -> None:
    start, end, bay = slot
    # booked inside the report's conversion window, and always before the day itself
    created = min(sent + timedelta(hours=demo.rng.randint(1, 96)), demo.at(order.opened_on, time(8, 0)) - timedelta(days=1))
    demo.session.add(
        Appointment(
            dealer_id=demo.dealer.id,
            reference=demo.reference(APPOINTMENT_PREFIX),
            customer_id=order.customer_id,
            vehicle_id=order.vehicle_id,
            service_type=order.service_type,
            starts_at=start,
            ends_at=end,
            bay=bay,
            status="done",
            mileage=order.mileage,
            notes=REMINDER_NOTES[code],
            created_at=created,
        )
    )


def other_reminders(demo: Demo) -> None:
    """The rest of six months of reminders: insurance and inspection due dates, lapsed owners' service,
    warranty ends and tier care; none of these was followed by a booking the demo shows."""
    first = demo.today - timedelta(days=HISTORY_DAYS)
    last = demo.today - timedelta(days=RECENT_GAP_DAYS)
    planned: list[tuple[date, Owner, str, Car, date, int | None]] = []
    for owner in demo.owners:
        for car in owner.cars:
            for code, due, offsets in _due_dates(car):
                planned += [(due - timedelta(days=o), owner, code, car, due, o) for o in offsets]
    for owner in demo.rng.sample(demo.owners, 8):
        day = first + timedelta(days=demo.rng.randrange((last - first).days))
        planned.append((day, owner, "tier_care", owner.cars[0], day, None))
    for sent_day, owner, code, car, due, offset in sorted(planned, key=lambda p: (p[0], p[1].id, p[2], p[3].id)):
        if first <= sent_day <= last:
            suffix = f":{offset}" if code == "insurance" else ""
            subject = owner.id if code == "tier_care" else car.id
            _sent_reminder(demo, owner, code, car, due=due, sent_day=sent_day, key=f"demo:{code}:{subject}:{due}{suffix}")


def _due_dates(car: Car) -> Iterator[tuple[str, date, tuple[int, ...]]]:
    """The car's due dates of the last months, with the days before them the reminders went."""
    if car.insurance_due:
        yield "insurance", _years_before(car.insurance_due, 1), (30, 7)
    if car.inspection_due:
        yield "inspection", _years_before(car.inspection_due, 2), (30,)
    if car.warranty_until:
        yield "warranty", car.warranty_until, (30,)
    if car.last_service_date:
        # an owner who stopped coming was reminded when the next service fell due, and did not book
        yield "maintenance", car.last_service_date + timedelta(days=180), (7,)


def _sent_reminder(demo: Demo, owner: Owner, code: str, car: Car, *, due: date, sent_day: date, key: str) -> datetime:
    """One reminder as the dispatcher leaves it: rendered, sent by SMS at the rule's hour. Returns sent_at."""
    rng = demo.rng
    lang = texts.language(owner.language)
    sent = demo.at(sent_day, time(10, rng.randrange(0, 20), rng.randrange(60)))
    params = {
        "name": owner.name or texts.text("default_name", lang), "plate": car.plate, "date": texts.format_date(due, lang),
        "dealer": demo.dealer.name, "service": demo.service_name("minor_service", lang),
    }
    demo.session.add(
        Outbox(
            dealer_id=demo.dealer.id,
            customer_id=owner.id,
            dedupe_key=key,
            kind=f"reminder:{code}",
            channel=Channel.sms,
            address=owner.phone,
            body=texts.render(f"reminder.{code}", lang, params),
            data={"rule": code, "lang": lang, "due": due.isoformat(), "vehicle_id": car.id, "plate": car.plate},
            status=OutboxStatus.sent,
            not_before=sent - timedelta(seconds=30),
            attempts=1,
            provider_id=demo.provider_id(),
            created_at=sent - timedelta(hours=rng.randint(2, 20)),  # planned the day before
            sent_at=sent,
        )
    )
    return sent


def _car(demo: Demo, order: Order) -> Car:
    return next(car for car in demo.owner(order.customer_id).cars if car.id == order.vehicle_id)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# -- surveys ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LowScore:
    """A low answer just written, waiting for its complaint ticket."""

    plan: LowAnswer
    response: SurveyResponse
    owner: Owner
    answered_at: datetime


def surveys(demo: Demo) -> list[LowScore]:
    """A survey after each repair order of the last six months, sent a day after it closed; most answered."""
    rng = demo.rng
    delay = timedelta(hours=demo.config.survey_delay_hours)
    first = demo.now - timedelta(days=HISTORY_DAYS)
    orders = [o for o in demo.orders if first <= o.closed_at and o.closed_at + delay < demo.now - timedelta(hours=2)]
    low_orders = _low_score_orders(demo, orders)
    low: list[LowScore] = []
    for order in orders:
        plan = low_orders.get(order.id)
        kind = plan.kind if plan else ("nps" if rng.random() < NPS_SHARE else "csat")
        sent = order.closed_at + delay
        survey = _sent_survey(demo, order, kind, sent)
        answered = plan is not None or rng.random() < ANSWERED_SHARE
        if not answered:
            continue
        owner = demo.owner(order.customer_id)
        answered_at = min(sent + timedelta(minutes=rng.randint(5, 180)), demo.now - timedelta(hours=1))
        score, comment = (plan.score, plan.comment) if plan else _good_score(rng, kind, owner.language)
        response = SurveyResponse(dealer_id=demo.dealer.id, survey_id=survey.id, score=score, comment=comment,
                                  created_at=answered_at)
        demo.session.add(response)
        if plan is not None:
            low.append(LowScore(plan, response, owner, answered_at))
    demo.session.flush()
    return low


def _low_score_orders(demo: Demo, orders: list[Order]) -> dict[int, LowAnswer]:
    """Which orders got the low answers: about five months, five weeks and a few days ago."""
    chosen: dict[int, LowAnswer] = {}
    targets = (demo.now - timedelta(days=140), demo.now - timedelta(days=35), demo.now)
    for plan, target in zip(LOW_ANSWERS, targets, strict=True):
        free = [o for o in orders if o.id not in chosen and o.customer_id not in demo.chatting
                and demo.owner(o.customer_id).language == "zh"]
        if free:
            chosen[min(free, key=lambda o: abs(o.closed_at - target)).id] = plan
    return chosen


def _sent_survey(demo: Demo, order: Order, kind: str, sent: datetime) -> Survey:
    """The survey and its SMS, as the planner and dispatcher leave them (dedupe key survey:<order>)."""
    owner, car = demo.owner(order.customer_id), _car(demo, order)
    lang = texts.language(owner.language)
    survey = Survey(dealer_id=demo.dealer.id, customer_id=owner.id, service_record_id=order.id, kind=kind,
                    advisor_id=order.advisor_id, sent_at=sent, created_at=sent - timedelta(hours=12))
    demo.session.add(survey)
    demo.session.flush()
    params = {
        "name": owner.name or texts.text("default_name", lang), "plate": car.plate, "dealer": demo.dealer.name,
        "date": texts.format_date(demo.local_day(order.closed_at), lang),
        "service": demo.service_name(order.service_type, lang),
    }
    demo.session.add(
        Outbox(
            dealer_id=demo.dealer.id,
            customer_id=owner.id,
            # the planner's own key: it finds the survey sent and never sends it again
            dedupe_key=f"survey:{order.id}",
            kind="survey",
            channel=Channel.sms,
            address=owner.phone,
            body=texts.render(f"survey.{kind}", lang, params),
            data={"survey_id": survey.id, "scale": kind, "service_record_id": order.id, "vehicle_id": car.id,
                  "plate": car.plate, "service": order.service_type},
            status=OutboxStatus.sent,
            not_before=sent,
            attempts=1,
            provider_id=demo.provider_id(),
            created_at=survey.created_at,
            sent_at=sent,
        )
    )
    return survey


def _good_score(rng: random.Random, kind: str, language: str) -> tuple[int, str]:
    # never a low one: each low score opens a complaint (flows/survey.py), and those are LOW_ANSWERS
    score = rng.choices((5, 4), weights=(65, 35))[0] if kind == "csat" else rng.choices((10, 9, 8, 7), weights=(45, 30, 15, 10))[0]
    comment = rng.choice(PRAISE) if language == "zh" and rng.random() < 0.25 else ""
    return score, comment


def survey_tickets(demo: Demo, low: list[LowScore]) -> None:
    """The service complaint each low score opened, linked from the answer (SurveyResponse.ticket_id)."""
    for item in low:
        plan, answer = item.plan, item.response
        top = CSAT_TOP if plan.kind == "csat" else NPS_TOP
        ticket = _ticket(
            demo,
            reference=demo.reference(COMPLAINT_PREFIX),
            kind=TicketKind.complaint,
            customer_id=item.owner.id,
            category="service",
            summary=templates.text("survey.ticket_summary", "zh", score=plan.score, top=top, comment=plan.comment),
            details={"source": "survey", "survey_id": answer.survey_id, "score": plan.score, "scale": plan.kind,
                     "comment": plan.comment},
            opened=item.answered_at,
            status=plan.status,
            department=CARE_DEPT,
            assignee="agent",
            result=plan.result,
            resolved_after=timedelta(days=2),
        )
        answer.ticket_id = ticket.id


# -- tickets -----------------------------------------------------------------------------------------------


def tickets(demo: Demo, owners: list[Owner]) -> None:
    """Complaints and roadside cases in every status; the open ones opened recently enough to be in time."""
    chosen = demo.rng.sample(owners, len(TICKETS))
    for plan, owner in zip(TICKETS, chosen, strict=True):
        is_roadside = plan.kind == TicketKind.roadside
        opened = demo.now - plan.ago if plan.ago < timedelta(days=1) else demo.at(demo.today - plan.ago, plan.clock)
        _ticket(
            demo,
            reference=demo.reference(ROADSIDE_PREFIX if is_roadside else COMPLAINT_PREFIX),
            kind=plan.kind,
            customer_id=owner.id,
            category=plan.category,
            summary=plan.text,
            details={"text": plan.text, "problem": plan.category} if is_roadside else {"text": plan.text},
            opened=opened,
            status=plan.status,
            department=plan.department,
            assignee=plan.assignee,
            result=plan.result,
            resolved_after=plan.resolved_after,
            urgent=is_roadside or complaint.is_safety_related(plan.text),
        )


def _ticket(
    demo: Demo,
    *,
    reference: str,
    kind: TicketKind,
    customer_id: int,
    category: str,
    summary: str,
    details: dict[str, Any],
    opened: datetime,
    status: TicketStatus,
    department: str | None,
    assignee: str | None,
    result: str,
    resolved_after: timedelta,
    urgent: bool = False,
) -> Ticket:
    sla = demo.config.sla_minutes["urgent" if urgent else "complaint"]
    done = status in (TicketStatus.resolved, TicketStatus.closed)
    ticket = Ticket(
        dealer_id=demo.dealer.id,
        reference=reference,
        kind=kind,
        customer_id=customer_id,
        category=category,
        urgent=urgent,
        summary=summary,
        details=details,
        status=status,
        department=department,
        assignee_id=demo.staff.get(assignee) if assignee else None,
        sla_due_at=opened + timedelta(minutes=sla),
        result=result or None,
        created_at=opened,
        resolved_at=opened + resolved_after if done else None,
    )
    demo.session.add(ticket)
    demo.session.flush()
    return ticket


# -- the two conversations waiting for a person ---------------------------------------------------------


@dataclass
class Chat:
    """One owner's simulator conversation, written step by step as bot/pipeline.py writes it."""

    demo: Demo
    owner: Owner
    started: datetime  # the first message: the pipeline opens the conversation for it
    conversation: Conversation = field(init=False)
    sent: int = 0

    def __post_init__(self) -> None:
        self.conversation = Conversation(dealer_id=self.demo.dealer.id, customer_id=self.owner.id, state={},
                                         created_at=self.started, updated_at=self.started)
        self.demo.session.add(self.conversation)
        self.demo.session.flush()

    @property
    def address(self) -> str:
        return f"sim:{self.owner.id}"  # the simulator identity bot/demo.py gives every owner

    def context(self, message: Message, at: datetime) -> Context:
        dealer = self.demo.dealer
        location = (dealer.latitude, dealer.longitude) if dealer.latitude is not None and dealer.longitude is not None else None
        return Context(now=at, lang=self.owner.language, dealer_name=dealer.name, dealer_phone=dealer.phone,
                       timezone=dealer.timezone, config=self.demo.config, customer_name=self.owner.name,
                       message_id=message.id, dealer_location=location)

    def owner_says(self, text: str, at: datetime) -> Message:
        """Stores the inbound message (step 1 of the pipeline) and touches the owner's identity."""
        self.sent += 1
        message = Message(
            dealer_id=self.demo.dealer.id, conversation_id=self.conversation.id, channel=Channel.simulator,
            channel_message_id=f"{self.owner.id}:demo-{self.sent}", direction=Direction.inbound,
            status=MessageStatus.received, address=self.address, kind="text", text=text, payload={}, sender="owner",
            created_at=at,
        )
        self.demo.session.add(message)
        self.demo.session.flush()
        identity = self.demo.session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.dealer_id == self.demo.dealer.id,
                                          ChannelIdentity.channel == Channel.simulator,
                                          ChannelIdentity.address == self.address)
        ).one()
        identity.last_inbound_at = at
        return message

    def bot_turn(self, message: Message, *, intent: str, replies: list[str], turn_effects: tuple[Effect, ...],
                 state: State, at: datetime, handoff: tuple[str, bool] | None = None) -> None:
        """The turn: effects in the turn's transaction, the message handled, the replies stored and sent."""
        scope = effects.Scope(self.demo.dealer.id, self.owner.id, self.conversation.id, message.id, at)
        effects.apply(self.demo.session, scope, turn_effects)
        # the console shows staff alerts live as they come; in the demo they were seen long ago
        for alert in self.demo.session.scalars(select(Outbox).where(Outbox.dedupe_key.like(f"alert:{message.id}:%"))):
            alert.status, alert.sent_at = OutboxStatus.sent, at
        if handoff is not None:
            self._hand_off(*handoff, at=at)
        message.status, message.handled_at = MessageStatus.handled, at
        message.intent, message.confidence = intent, 0.93
        self._touch(message, state.to_json())
        for text in replies:
            self._reply(message, Reply(text), at)

    def while_waiting(self, message: Message, at: datetime) -> None:
        """A message after the hand-off: the bot stays silent and the console is told (Pipeline._turn)."""
        message.status, message.handled_at = MessageStatus.handled, at
        self._touch(message, None)
        event = conversation_status.record_event(session=self.demo.session, conversation=self.conversation,
                                                 kind="message", actor="owner", data={"message_id": message.id})
        event.created_at = at

    def _hand_off(self, reason: str, urgent: bool, *, at: datetime) -> None:
        # effects._hand_off, with the event dated when it happened
        conversation = self.conversation
        conversation.handoff_reason, conversation.handed_off_at, conversation.handoff_urgent = reason, at, urgent
        event = conversation_status.move(session=self.demo.session, conversation=conversation,
                                         to=ConversationStatus.waiting_staff, actor="bot",
                                         data={"reason": reason, "urgent": urgent})
        event.created_at = at

    def _touch(self, message: Message, state: dict[str, Any] | None) -> None:
        conversation = self.conversation
        conversation.last_message_at, conversation.last_channel = message.created_at, Channel.simulator
        conversation.last_handled_id, conversation.updated_at = message.id, message.handled_at
        if state is not None:
            conversation.state = state

    def _reply(self, inbound: Message, reply: Reply, at: datetime) -> None:
        session = self.demo.session
        message = Message(
            dealer_id=self.demo.dealer.id, conversation_id=self.conversation.id, channel=Channel.simulator,
            direction=Direction.outbound, status=MessageStatus.outgoing, address=self.address, text=reply.text,
            payload={}, reply_to_id=inbound.id, sender="bot", created_at=at,
        )
        session.add(message)
        session.flush()
        # the simulator shows replies from its HTTP answer: the outbox row is sent at once
        session.add(Outbox(
            dealer_id=self.demo.dealer.id, customer_id=self.owner.id, conversation_id=self.conversation.id,
            message_id=message.id, dedupe_key=f"reply:{message.id}", kind="reply", channel=Channel.simulator,
            address=self.address, body=reply.as_plain_text(), data={}, status=OutboxStatus.sent, not_before=at,
            attempts=0, created_at=at, sent_at=at,
        ))


def roadside_conversation(demo: Demo, owner: Owner) -> None:
    """A flat tyre on the expressway a few minutes ago: safety first, the case, where, the hand-off."""
    first_at = demo.now - timedelta(minutes=9)
    chat = Chat(demo, owner, first_at)
    reference = demo.reference(ROADSIDE_PREFIX)
    config = demo.config
    hotline = config.rescue_hotline or demo.dealer.phone
    lang = owner.language

    # 1. the owner says what happened; the bot opens the case at once and asks where
    text = ROADSIDE_CHAT[0]
    message = chat.owner_says(text, first_at)
    problem = roadside.classify_problem(text)
    place = templates.text("roadside.staff_place_unknown", "zh")
    slots: dict[str, Any] = {"reference": reference, "location": None, "problem": problem, "asked": ["location"]}
    chat.bot_turn(
        message, intent="roadside_help", at=first_at + timedelta(seconds=1), state=State(flow=roadside.FLOW, slots=slots),
        replies=[templates.text("roadside.safety", lang, hotline=hotline),
                 templates.text("roadside.opened", lang, reference=reference),
                 templates.text("roadside.ask_location", lang)],
        turn_effects=(
            OpenTicket(reference=reference, kind="roadside", category=problem or "unknown", urgent=True, summary=text,
                       sla_minutes=config.sla_minutes["urgent"], details={"text": text, "location": None, "problem": problem}),
            AlertStaff(reason="roadside", urgent=True, reference=reference,
                       text=templates.text("roadside.staff_alert", "zh", reference=reference, summary=text, place=place)),
        ),
    )

    # 2. where: nothing left to ask, so the rescue team gets the owner (rescue runs around the clock)
    at = first_at + timedelta(minutes=2)
    where = {"text": ROADSIDE_CHAT[1]}
    message = chat.owner_says(ROADSIDE_CHAT[1], at)
    context = chat.context(message, at)
    lead = [templates.text("roadside.finish", lang, reference=reference, minutes=config.sla_minutes["urgent"]),
            roadside.radius_text(where, context)]
    staff_line = [when_staff_answers(context)] if config.staff_available(at, demo.dealer.timezone) else []
    chat.bot_turn(message, intent="inform", at=at + timedelta(seconds=1), state=State(), replies=lead + staff_line,
                  turn_effects=(UpdateTicket(reference, {"location": where}, None),), handoff=("roadside", True))

    # 3. the owner writes again while waiting: the bot stays silent
    at = first_at + timedelta(minutes=4)
    chat.while_waiting(chat.owner_says(ROADSIDE_CHAT[2], at), at + timedelta(seconds=1))


def complaint_conversation(demo: Demo, owner: Owner) -> None:
    """A noise after a service, the second time: a product quality complaint handed to a person."""
    at = demo.now - timedelta(minutes=26)
    chat = Chat(demo, owner, at)
    reference = demo.reference(COMPLAINT_PREFIX)
    config = demo.config
    lang = owner.language

    text = COMPLAINT_CHAT[0]
    message = chat.owner_says(text, at)
    urgent = complaint.is_safety_related(text)
    minutes = config.sla_minutes["urgent" if urgent else "complaint"]
    turn_effects: list[Effect] = [
        OpenTicket(reference=reference, kind="complaint", category=complaint.classify(text), urgent=urgent, summary=text,
                   sla_minutes=minutes, details={"text": text}),
    ]
    if urgent:
        turn_effects.append(AlertStaff(reason="complaint", urgent=True, reference=reference,
                                       text=templates.text("complaint.staff_alert", "zh", reference=reference, summary=text)))
        lead = [templates.text("complaint.recorded_urgent", lang, reference=reference, minutes=minutes),
                templates.text("complaint.safety_first", lang, hotline=config.rescue_hotline or demo.dealer.phone)]
    else:
        lead = [templates.text("complaint.recorded", lang, reference=reference)]
    context = chat.context(message, at)
    chat.bot_turn(message, intent="complaint", at=at + timedelta(seconds=1), state=State(),
                  replies=[*lead, when_staff_answers(context)], turn_effects=tuple(turn_effects),
                  handoff=("complaint", urgent))

    later = at + timedelta(minutes=8)
    chat.while_waiting(chat.owner_says(COMPLAINT_CHAT[1], later), later + timedelta(seconds=1))

