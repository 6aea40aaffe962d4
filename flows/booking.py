"""Booking (预约), the first of the seven service steps: the need, the car and a time that fits.

A small state machine over `state.slots` (all JSON):

    mode        "book" | "reschedule" | "cancel"
    step        what was asked last: service, time, vehicle, pickup, confirm, change,
                appointment, confirm_reschedule, confirm_cancel
    service     service code from the dealer's config
    date, time, part
                the owner's wish as the NLU read it: "2026-11-27", "15:00", "afternoon" (each
                may be None); kept so a correction of the day keeps the wished hour
    starts_at   the settled start, ISO in UTC; None until the calendar said yes
    proposals   the free starts last offered, ISO in UTC (picked by number or label)
    vehicle_id  a known car; plate: a car not on the owner's record yet;
                choose_vehicle: ask even when the owner has a single car (they asked to change it)
    mileage, notes, pickup
    appointment_id, appointment_ids
                reschedule / cancel: the appointment chosen, the ones offered

Any message may fill any slot, in any order; a new time, plate or service always replaces the
old one, so corrections need no special step. The calendar is re-checked whenever the service
(its duration) or the wish changes.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dealer_config import Service
from bot.messages import Reply
from flows import calendar, templates
from flows.calendar import Calendar
from flows.handoff import hand_off
from flows.turn import (
    AppointmentInfo,
    CancelAppointment,
    Context,
    CreateAppointment,
    RescheduleAppointment,
    State,
    Turn,
    VehicleInfo,
)
from nlu import IntentScore, Parse
from nlu.entities.plates import fold_width, valid_plate

FLOW = "booking"
CALENDAR_INTENTS = ("book_service", "reschedule", "cancel_booking", "booking_status", "inform")
MAX_MISSES = 2

# yes / no as owners type them; button labels and numbers are checked separately
_YES = re.compile(r"^\s*(好|好的|行|可以|是|是的|要|需要|嗯|对|对的|没问题|确认|确定|ok|okay|yes|yeah|sure|y)\W*$", re.IGNORECASE)
_NO = re.compile(r"^\s*(不|不用|不用了|不要|不需要|不对|算了|no|nope|n|no thanks)\W*$", re.IGNORECASE)
# something that looks like an attempt at a plate: a province character or a run of letters/digits
_PLATE_LIKE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]|[A-Za-z0-9]{4,}")
_REFERENCE = re.compile(r"(?<![A-Za-z0-9])B\d{6}(?!\d)", re.IGNORECASE)  # \b fails next to Chinese: 取消B000008


def needs_calendar(state: State, parse: Parse) -> bool:
    """True when this turn may need the workshop's booked slots and the owner's appointments."""
    return state.flow == FLOW or parse.name in CALENDAR_INTENTS


# ------------------------------------------------------------------------------------------
# entry points


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Handles the first booking message and every message while the booking flow is active."""
    if state.flow != FLOW:
        return _start_booking(parse, ctx)
    if parse.name == "request_human":
        return hand_off(ctx, reason="request")
    mode = state.slots.get("mode", "book")
    # an answer to the question just asked wins over the intent it happens to read as:
    # "保留预约" (keep it) reads as booking_status, "修改" (change) at the summary as reschedule
    answers = _answers_pending(state, parse, ctx)
    if parse.name == "booking_status" and not answers:
        return status(state, parse, ctx)
    if mode == "reschedule":
        return _reschedule_step(state, parse, ctx)
    if mode == "cancel":
        return _cancel_step(state, parse, ctx)
    if answers:
        return _book_step(state, parse, ctx)
    if parse.name == "reschedule" and not _has_booking_entities(parse) and _upcoming(ctx):
        # "改一下之前的预约" mid-booking means an existing appointment; "改成周五" carries a time
        return reschedule(state, parse, ctx)
    if parse.name == "cancel_booking" and not _has_booking_entities(parse):
        # mid-booking, "算了/不约了" drops the booking being made, not an older appointment
        return Turn(replies=(Reply(_t(ctx, "abandoned")),), state=State())
    return _book_step(state, parse, ctx)


def status(state: State, parse: Parse, ctx: Context) -> Turn:
    """Lists the owner's upcoming appointments, or offers to book when there are none."""
    upcoming = _upcoming(ctx)
    if not upcoming:
        reply = Reply(_t(ctx, "status.none"), buttons=templates.labels("booking.status.book_button", ctx.lang))
        return Turn(replies=(reply,), state=state.with_(misses=0))
    lines = [_t(ctx, "status.title")] + [
        _t(ctx, "status.item", reference=a.reference, when=when_label(a.starts_at, ctx), service=_service_name(a.service, ctx))
        for a in upcoming
    ]
    return Turn(replies=(Reply("\n".join(lines)),), state=state.with_(misses=0))


def reschedule(state: State, parse: Parse, ctx: Context) -> Turn:
    """Starts moving one of the owner's appointments: pick it, then a new time, then confirm."""
    upcoming = _upcoming(ctx)
    if not upcoming:
        reply = Reply(_t(ctx, "reschedule.none"), buttons=templates.labels("booking.status.book_button", ctx.lang))
        return Turn(replies=(reply,), state=State())
    slots: dict[str, Any] = {"mode": "reschedule"}
    chosen = _appointment_in(parse.text, upcoming)
    if chosen is None and len(upcoming) > 1:
        return _ask_appointment(slots, upcoming, ctx, "reschedule.pick")
    slots["appointment_id"] = (chosen or upcoming[0]).id
    _take_time(slots, parse)
    return _next_reschedule(slots, ctx)


def cancel(state: State, parse: Parse, ctx: Context) -> Turn:
    """Starts cancelling one of the owner's appointments: pick it, then confirm."""
    upcoming = _upcoming(ctx)
    if not upcoming:
        return Turn(replies=(Reply(_t(ctx, "cancel.none")),), state=State())
    slots: dict[str, Any] = {"mode": "cancel"}
    chosen = _appointment_in(parse.text, upcoming)
    if chosen is None and len(upcoming) > 1:
        return _ask_appointment(slots, upcoming, ctx, "cancel.pick")
    slots["appointment_id"] = (chosen or upcoming[0]).id
    return _ask_cancel_confirm(slots, ctx)


def start_with(parse: Parse, ctx: Context, **known: Any) -> Turn:
    """Starts a booking, or moves or cancels a given appointment, with what is already known (an
    answer to a reminder: its car and service, or its appointment), so only the rest is asked."""
    slots: dict[str, Any] = {"mode": "book", "notes": parse.text.strip()} | known
    if slots["mode"] == "reschedule":
        _take_time(slots, parse)
        return _next_reschedule(slots, ctx)  # starts over when the appointment is gone
    if slots["mode"] == "cancel":
        return _ask_cancel_confirm(slots, ctx) if _appointment(slots, ctx) else cancel(State(), parse, ctx)
    if not ctx.config.services:
        return hand_off(ctx, reason="booking")
    _take_entities(slots, parse, ctx)
    return _next_question(slots, ctx)


# ------------------------------------------------------------------------------------------
# booking a new appointment


def _start_booking(parse: Parse, ctx: Context) -> Turn:
    # the first message says best what the owner wants ("刹车有异响"): the advisor reads it
    slots: dict[str, Any] = {"mode": "book", "notes": parse.text.strip()}
    if not ctx.config.services:
        return hand_off(ctx, reason="booking")  # a dealer without a service list books by phone
    _take_entities(slots, parse, ctx)
    return _next_question(slots, ctx)


def _book_step(state: State, parse: Parse, ctx: Context) -> Turn:
    slots = dict(state.slots)
    step = slots.get("step")
    if step == "confirm" and not _has_booking_entities(parse):
        answer = _yes_no(parse, templates.labels("booking.confirm_buttons", ctx.lang))
        if answer is True:
            return _book(slots, ctx)
        if answer is False:
            return _ask_change(slots, ctx)
    heard = _take_pick(slots, step, parse, ctx)
    if heard == "changing":
        return _next_question(slots, ctx)
    if heard is None:
        heard = _take_entities(slots, parse, ctx)
    if heard == "bad_plate":
        return _miss(state, ctx, lead=_t(ctx, "plate_invalid", plate=parse.text.strip()))
    if heard is None and step == "vehicle" and _PLATE_LIKE.search(fold_width(parse.text)):
        return _miss(state, ctx, lead=_t(ctx, "plate_invalid", plate=parse.text.strip()))
    if heard is None:
        return _miss(state, ctx, lead=_t(ctx, f"hint.{step or 'service'}"))
    return _next_question(slots, ctx)


def _answers_pending(state: State, parse: Parse, ctx: Context) -> bool:
    """True when the message answers the question just asked (a button, a number, yes/no)."""
    slots = dict(state.slots)
    step = slots.get("step")
    buttons = {"confirm": "booking.confirm_buttons", "confirm_reschedule": "booking.reschedule.buttons",
               "confirm_cancel": "booking.cancel.buttons"}
    if step in buttons:
        return _yes_no(parse, templates.labels(buttons[step], ctx.lang)) is not None
    if step == "appointment":
        offered = [a for a in _upcoming(ctx) if a.id in (slots.get("appointment_ids") or [])]
        labels = [_appointment_label(a, ctx) for a in offered]
        return _picked(parse.text, labels) is not None or _appointment_in(parse.text, offered) is not None
    if slots.get("mode", "book") != "book" and step != "time":
        return False
    return _take_pick(slots, step, parse, ctx) is not None


def _take_pick(slots: dict[str, Any], step: str | None, parse: Parse, ctx: Context) -> str | None:
    """Reads an answer to the question just asked (a number, a tapped label, yes/no)."""
    if step == "service":
        index = _picked(parse.text, [_name(s, ctx) for s in ctx.config.services])
        if index is not None:
            _set_service(slots, ctx.config.services[index].code)
            return "picked"
    elif step == "time":
        proposals = [datetime.fromisoformat(p) for p in slots.get("proposals") or []]
        index = _picked(parse.text, [when_label(p, ctx) for p in proposals])
        if index is not None:
            _settle(slots, proposals[index], ctx)
            return "picked"
    elif step == "vehicle":
        index = _picked(parse.text, [v.plate for v in ctx.vehicles])
        if index is not None:
            slots.update(vehicle_id=ctx.vehicles[index].id, plate=None)
            return "picked"
    elif step == "pickup":
        answer = _yes_no(parse, templates.labels("booking.pickup_buttons", ctx.lang))
        if answer is not None and not _has_booking_entities(parse):
            slots["pickup"] = answer
            return "picked"
    elif step == "change":
        options = _change_options(ctx)
        index = _picked(parse.text, [_t(ctx, f"change.{o}") for o in options])
        if index is not None:
            _forget(slots, options[index], ctx)
            return "changing"
    return None


def _take_entities(slots: dict[str, Any], parse: Parse, ctx: Context) -> str | None:
    """Fills the slots a message names (service, time, car, mileage), replacing older values."""
    heard: str | None = None
    code = _service_in(parse, ctx)
    if code is not None:
        _set_service(slots, code)
        heard = "entity"
    if _take_time(slots, parse):
        heard = "entity"
    mileage = parse.entity("mileage")
    if mileage is not None and isinstance(mileage.value, int):
        slots["mileage"] = mileage.value
        heard = "entity"
    plate = parse.entity("plate")
    if plate is not None:
        if not valid_plate(str(plate.value)):
            return "bad_plate"
        known = next((v for v in ctx.vehicles if _same_plate(v.plate, plate.value)), None)
        if known is not None:
            slots.update(vehicle_id=known.id, plate=None)
        else:
            slots.update(vehicle_id=None, plate=_normal_plate(plate.value))
        heard = "entity"
    return heard


def _take_time(slots: dict[str, Any], parse: Parse) -> bool:
    """Merges a time entity into the wish: a new day keeps the wished hour unless a new one came."""
    entity = parse.entity("time")
    if entity is None or not isinstance(entity.value, dict):
        return False
    value = entity.value
    if not (value.get("date") or value.get("time") or value.get("part_of_day")):
        return False
    new_clock = value.get("time") or value.get("part_of_day")
    slots["date"] = value.get("date") or slots.get("date")
    if new_clock:
        slots["time"] = value.get("time")
        slots["part"] = value.get("part_of_day")
    slots["starts_at"] = None
    return True


def _set_service(slots: dict[str, Any], code: str) -> None:
    if slots.get("service") != code:
        slots["service"] = code
        slots["starts_at"] = None  # another duration: the calendar must say yes again


def _settle(slots: dict[str, Any], start: datetime, ctx: Context) -> None:
    """Takes a start as the booking's time; the wish follows so a later day change keeps the hour."""
    local = start.astimezone(_zone(ctx))
    slots.update(
        starts_at=_iso(start), date=local.date().isoformat(), time=local.strftime("%H:%M"), part=None, proposals=[]
    )


def _next_question(slots: dict[str, Any], ctx: Context, lead: tuple[str, ...] = ()) -> Turn:
    """Asks for the first slot still missing, or shows the summary when none is."""
    service = _service(slots, ctx)
    if service is None:
        return _ask(slots, ctx, "service", _t(ctx, "ask.service"), tuple(_name(s, ctx) for s in ctx.config.services), lead)
    if not slots.get("starts_at"):
        return _ask_time(slots, ctx, service.minutes, lead)
    if slots.get("vehicle_id") is None and not slots.get("plate"):
        if len(ctx.vehicles) == 1 and not slots.get("choose_vehicle"):
            slots["vehicle_id"] = ctx.vehicles[0].id  # the owner's only car: no need to ask
        else:
            key = "ask.vehicle" if ctx.vehicles else "ask.plate"
            return _ask(slots, ctx, "vehicle", _t(ctx, key), tuple(v.plate for v in ctx.vehicles), lead)
    if slots.get("pickup") is None:
        if ctx.config.pickup_offered:
            return _ask(slots, ctx, "pickup", _t(ctx, "ask.pickup"), templates.labels("booking.pickup_buttons", ctx.lang), lead)
        slots["pickup"] = False
    return _ask(slots, ctx, "confirm", _summary(slots, service, ctx), templates.labels("booking.confirm_buttons", ctx.lang), lead)


def _ask_time(slots: dict[str, Any], ctx: Context, minutes: int, lead: tuple[str, ...]) -> Turn:
    """Checks the owner's wish against the calendar; proposes the nearest free starts if it fails."""
    cal = _calendar(ctx)
    wish = _wish(slots, cal, minutes)
    if wish is None:
        proposals = calendar.free_slots(cal, minutes, cal.today())
        return _propose(slots, ctx, proposals, _t(ctx, "ask.time"), lead)
    turn = _check_wish(slots, ctx, cal, minutes, wish, lead)
    return turn if turn is not None else _next_question(slots, ctx, lead)


def _check_wish(
    slots: dict[str, Any], ctx: Context, cal: Calendar, minutes: int, wish: tuple[date, time | None, str | None], lead: tuple[str, ...]
) -> Turn | None:
    """Settles the wish on `cal` (None when it fits) or says why not and proposes the nearest
    free starts: a clock time is checked as it is, a day (or part of one) offers its free starts."""
    day, at, part = wish
    if at is not None:
        start = datetime.combine(day, at, cal.zone)
        reason = calendar.why_not(cal, start, minutes)
        if reason is None:
            _settle(slots, start, ctx)
            return None
        intro = _t(ctx, f"reason.{reason}", when=when_label(start, ctx)) + _t(ctx, "proposals")
        return _propose(slots, ctx, calendar.free_slots(cal, minutes, day, part=part, at=at), intro, lead)
    reason = calendar.day_reason(cal, day, minutes, part)
    if reason is None:
        intro = _t(ctx, "day_slots", when=day_label(day, ctx))
    else:
        intro = _t(ctx, f"reason.{reason}", when=day_label(day, ctx)) + _t(ctx, "proposals")
    return _propose(slots, ctx, calendar.free_slots(cal, minutes, day, part=part), intro, lead)


def _wish(slots: dict[str, Any], cal: Calendar, minutes: int) -> tuple[date, time | None, str | None] | None:
    """The wished day, clock time and part of day; a time without a day means the next such time."""
    wished_date, wished_time, part = slots.get("date"), slots.get("time"), slots.get("part")
    if not (wished_date or wished_time or part):
        return None
    at = time.fromisoformat(wished_time) if wished_time else None
    if wished_date:
        return date.fromisoformat(wished_date), at, part
    today = cal.today()
    # "三点" or "下午" alone: today if that is still ahead, else tomorrow
    if at is not None:
        later_today = datetime.combine(today, at, cal.zone) > cal.now
    else:
        later_today = calendar.day_reason(cal, today, minutes, part) != calendar.PAST
    return (today if later_today else today + timedelta(days=1)), at, part


def _propose(slots: dict[str, Any], ctx: Context, proposals: list[datetime], intro: str, lead: tuple[str, ...]) -> Turn:
    if not proposals:
        # two weeks without a free bay: a service advisor has to juggle the workshop
        return hand_off(ctx, reason="booking", lead=(Reply(_t(ctx, "no_slots")),))
    slots["proposals"] = [_iso(p) for p in proposals]
    return _ask(slots, ctx, "time", intro, tuple(when_label(p, ctx) for p in proposals), lead)


def _summary(slots: dict[str, Any], service: Service, ctx: Context) -> str:
    start = datetime.fromisoformat(slots["starts_at"])
    lines = [
        _t(ctx, "summary.title"),
        _t(ctx, "summary.service", service=_name(service, ctx)),
        _t(ctx, "summary.time", when=when_label(start, ctx)),
        _t(ctx, "summary.car", car=_car_label(slots, ctx)),
    ]
    if slots.get("mileage"):
        lines.append(_t(ctx, "summary.mileage", mileage=slots["mileage"]))
    if ctx.config.pickup_offered:
        lines.append(_t(ctx, "summary.pickup_yes" if slots.get("pickup") else "summary.pickup_no"))
    lines.append(_t(ctx, "summary.ask"))
    return "\n".join(lines)


def _ask_change(slots: dict[str, Any], ctx: Context) -> Turn:
    labels = tuple(_t(ctx, f"change.{o}") for o in _change_options(ctx))
    return _ask(slots, ctx, "change", _t(ctx, "ask.change"), labels)


def _change_options(ctx: Context) -> list[str]:
    return ["service", "time", "vehicle"] + (["pickup"] if ctx.config.pickup_offered else [])


def _forget(slots: dict[str, Any], what: str, ctx: Context) -> None:
    """Clears one slot so the next question asks it again."""
    if what == "service":
        slots.update(service=None, starts_at=None)
    elif what == "time":
        slots.update(starts_at=None, date=None, time=None, part=None)
    elif what == "vehicle":
        # asked on purpose: even an owner with one car on record may bring another one
        slots.update(vehicle_id=None, plate=None, choose_vehicle=True)
    elif what == "pickup":
        slots["pickup"] = None


def _book(slots: dict[str, Any], ctx: Context) -> Turn:
    """The owner confirmed: book, and prepare the answer for a slot taken meanwhile."""
    service = _service(slots, ctx)
    assert service is not None  # the summary is only shown once the service is known
    start = datetime.fromisoformat(slots["starts_at"])
    reference = f"B{ctx.message_id:06d}"
    when = when_label(start, ctx)
    lines = [
        _t(ctx, "booked", reference=reference, when=when, service=_name(service, ctx), car=_car_label(slots, ctx)),
        _t(ctx, "bring", minutes=service.minutes),
    ]
    if slots.get("pickup"):
        lines.append(_t(ctx, "pickup_note"))
    effect = CreateAppointment(
        reference=reference,
        service=service.code,
        starts_at=start,
        minutes=service.minutes,
        vehicle_id=slots.get("vehicle_id"),
        plate=slots.get("plate"),
        mileage=slots.get("mileage"),
        notes=slots.get("notes", ""),
        pickup=bool(slots.get("pickup")),
        if_taken=_slot_taken(slots, start, service.minutes, ctx),
    )
    return Turn(replies=(Reply("\n".join(lines)),), state=State(), effects=(effect,))


def _slot_taken(slots: dict[str, Any], start: datetime, minutes: int, ctx: Context) -> Turn:
    """The turn the pipeline sends instead when the start was taken between summary and confirm."""
    cal = _calendar(ctx)
    local = start.astimezone(cal.zone)
    proposals = calendar.free_slots(cal, minutes, local.date(), at=local.time(), exclude=(start,))
    retry = dict(slots) | {"starts_at": None}
    intro = _t(ctx, "slot_taken", when=when_label(start, ctx))
    return _propose(retry, ctx, proposals, intro, ())


# ------------------------------------------------------------------------------------------
# rescheduling and cancelling


def _reschedule_step(state: State, parse: Parse, ctx: Context) -> Turn:
    slots = dict(state.slots)
    step = slots.get("step")
    if step == "appointment":
        return _pick_appointment(state, parse, ctx, then=_next_reschedule)
    if step == "confirm_reschedule" and parse.entity("time") is None:
        answer = _yes_no(parse, templates.labels("booking.reschedule.buttons", ctx.lang))
        if answer is True:
            return _move(slots, ctx)
        if answer is False:
            slots.update(starts_at=None, date=None, time=None, part=None)
            return _next_reschedule(slots, ctx, lead=(_t(ctx, "reschedule.other_time"),))
    if step == "time":
        proposals = [datetime.fromisoformat(p) for p in slots.get("proposals") or []]
        index = _picked(parse.text, [when_label(p, ctx) for p in proposals])
        if index is not None:
            _settle(slots, proposals[index], ctx)
            return _next_reschedule(slots, ctx)
    if _take_time(slots, parse):
        return _next_reschedule(slots, ctx)
    return _miss(state, ctx, lead=_t(ctx, f"hint.{step}"))


def _next_reschedule(slots: dict[str, Any], ctx: Context, lead: tuple[str, ...] = ()) -> Turn:
    appointment = _appointment(slots, ctx)
    if appointment is None:  # gone meanwhile (cancelled by staff): start over
        return reschedule(State(), Parse(text="", intent=IntentScore("reschedule", 1.0)), ctx)
    minutes = _minutes(appointment)
    if not slots.get("starts_at"):
        cal = _calendar(ctx, ignore=appointment.id)
        wish = _wish(slots, cal, minutes)
        if wish is None:
            proposals = calendar.free_slots(cal, minutes, cal.today())
            intro = _t(ctx, "reschedule.ask_time", when=when_label(appointment.starts_at, ctx), service=_service_name(appointment.service, ctx))
            return _propose(slots, ctx, proposals, intro, lead)
        turn = _check_wish(slots, ctx, cal, minutes, wish, lead)
        if turn is not None:
            return turn
    new = datetime.fromisoformat(slots["starts_at"])
    text = _t(
        ctx,
        "reschedule.confirm",
        service=_service_name(appointment.service, ctx),
        old=when_label(appointment.starts_at, ctx),
        new=when_label(new, ctx),
    )
    return _ask(slots, ctx, "confirm_reschedule", text, templates.labels("booking.reschedule.buttons", ctx.lang), lead)


def _move(slots: dict[str, Any], ctx: Context) -> Turn:
    appointment = _appointment(slots, ctx)
    assert appointment is not None
    start = datetime.fromisoformat(slots["starts_at"])
    minutes = _minutes(appointment)
    cal = _calendar(ctx, ignore=appointment.id)
    local = start.astimezone(cal.zone)
    retry = dict(slots) | {"starts_at": None}
    proposals = calendar.free_slots(cal, minutes, local.date(), at=local.time(), exclude=(start,))
    if_taken = _propose(retry, ctx, proposals, _t(ctx, "slot_taken", when=when_label(start, ctx)), ())
    reply = Reply(_t(ctx, "reschedule.done", when=when_label(start, ctx), reference=appointment.reference))
    effect = RescheduleAppointment(appointment_id=appointment.id, starts_at=start, minutes=minutes, if_taken=if_taken)
    return Turn(replies=(reply,), state=State(), effects=(effect,))


def _cancel_step(state: State, parse: Parse, ctx: Context) -> Turn:
    slots = dict(state.slots)
    step = slots.get("step")
    if step == "appointment":
        return _pick_appointment(state, parse, ctx, then=lambda s, c: _ask_cancel_confirm(s, c))
    answer = _yes_no(parse, templates.labels("booking.cancel.buttons", ctx.lang))
    appointment = _appointment(slots, ctx)
    if answer is True and appointment is not None:
        reply = Reply(_t(ctx, "cancel.done", reference=appointment.reference))
        return Turn(replies=(reply,), state=State(), effects=(CancelAppointment(appointment.id),))
    if answer is False or appointment is None:
        return Turn(replies=(Reply(_t(ctx, "cancel.kept")),), state=State())
    return _miss(state, ctx, lead=_t(ctx, "hint.confirm_cancel"))


def _ask_cancel_confirm(slots: dict[str, Any], ctx: Context) -> Turn:
    appointment = _appointment(slots, ctx)
    assert appointment is not None
    text = _t(
        ctx,
        "cancel.confirm",
        when=when_label(appointment.starts_at, ctx),
        service=_service_name(appointment.service, ctx),
        reference=appointment.reference,
    )
    return _ask(slots, ctx, "confirm_cancel", text, templates.labels("booking.cancel.buttons", ctx.lang))


def _ask_appointment(slots: dict[str, Any], upcoming: list[AppointmentInfo], ctx: Context, key: str) -> Turn:
    slots["appointment_ids"] = [a.id for a in upcoming]
    return _ask(slots, ctx, "appointment", _t(ctx, key), tuple(_appointment_label(a, ctx) for a in upcoming))


def _pick_appointment(state: State, parse: Parse, ctx: Context, then: Any) -> Turn:
    """Reads which appointment the owner meant (number, label or reference), then goes on."""
    slots = dict(state.slots)
    offered = [a for a in _upcoming(ctx) if a.id in (slots.get("appointment_ids") or [])]
    index = _picked(parse.text, [_appointment_label(a, ctx) for a in offered])
    chosen = offered[index] if index is not None else _appointment_in(parse.text, offered)
    if chosen is None:
        return _miss(state, ctx, lead=_t(ctx, "hint.appointment"))
    slots["appointment_id"] = chosen.id
    if slots.get("mode") == "reschedule":
        _take_time(slots, parse)
    return then(slots, ctx)


# ------------------------------------------------------------------------------------------
# small helpers


def _ask(
    slots: dict[str, Any], ctx: Context, step: str, text: str, buttons: tuple[str, ...] = (), lead: tuple[str, ...] = ()
) -> Turn:
    """One question: remembers what was asked, so the next message is read as its answer."""
    slots["step"] = step
    replies = tuple(Reply(line) for line in lead) + (Reply(text, buttons=buttons),)
    return Turn(replies=replies, state=State(flow=FLOW, slots=slots, misses=0))


def _miss(state: State, ctx: Context, lead: str) -> Turn:
    """Nothing usable: re-ask the pending question with a hint, or hand off the second time."""
    misses = state.misses + 1
    if misses >= MAX_MISSES:
        return hand_off(ctx, reason="booking")
    turn = _repeat(dict(state.slots), ctx)
    return Turn(replies=(Reply(lead),) + turn.replies, state=turn.state.with_(misses=misses), effects=turn.effects)


def _repeat(slots: dict[str, Any], ctx: Context) -> Turn:
    """The pending question again, exactly as asked (proposals are not searched anew)."""
    step = slots.get("step")
    mode = slots.get("mode", "book")
    if step == "time" and slots.get("proposals"):
        proposals = [datetime.fromisoformat(p) for p in slots["proposals"]]
        return _ask(slots, ctx, "time", _t(ctx, "proposals"), tuple(when_label(p, ctx) for p in proposals))
    if step == "change":
        return _ask_change(slots, ctx)
    if step == "appointment":
        offered = [a for a in _upcoming(ctx) if a.id in (slots.get("appointment_ids") or [])]
        return _ask_appointment(slots, offered, ctx, f"{mode}.pick")
    if mode == "cancel":
        return _ask_cancel_confirm(slots, ctx)
    if mode == "reschedule":
        return _next_reschedule(slots, ctx)
    return _next_question(slots, ctx)


def _yes_no(parse: Parse, buttons: tuple[str, ...]) -> bool | None:
    """Reads yes or no: the first/second button (number or label), the intent, or a plain word."""
    index = _picked(parse.text, list(buttons[:2]))
    if index is not None:
        return index == 0
    if _NO.match(parse.text):
        return False
    if _YES.match(parse.text):
        return True
    if parse.name in ("affirm", "deny") and parse.confidence >= 0.5:
        return parse.name == "affirm"
    return None


def _picked(text: str, labels: list[str]) -> int | None:
    """Returns the index the owner chose: "1".."n" or the label itself (tapped or typed)."""
    said = fold_width(text).strip().rstrip("。.!！").strip()
    if said.isdigit() and 1 <= int(said) <= len(labels):
        return int(said) - 1
    folded = [fold_width(label).strip().lower() for label in labels]
    return folded.index(said.lower()) if said and said.lower() in folded else None


def _has_booking_entities(parse: Parse) -> bool:
    return any(parse.entity(name) is not None for name in ("time", "plate", "service", "mileage"))


# words that say "my car needs something" without saying what: an advisor asks which service
GENERIC_SERVICE_WORDS = frozenset({"保养", "宝养", "保氧", "service", "servicing", "maintenance", "维修", "修车", "修一下"})


def _service_in(parse: Parse, ctx: Context) -> str | None:
    """The service a message names: the NLU's code if the dealer offers it, else a dealer's name."""
    offered = {s.code for s in ctx.config.services}
    entity = parse.entity("service")
    if entity is not None and entity.value in offered and entity.text.strip().lower() not in GENERIC_SERVICE_WORDS:
        return str(entity.value)
    said = parse.text.lower()
    # longest name first, so a dealer's "大保养" wins over "保养"
    for service in sorted(ctx.config.services, key=lambda s: -max(len(s.name_zh), len(s.name_en))):
        if (service.name_zh and service.name_zh in parse.text) or (service.name_en and service.name_en.lower() in said):
            return service.code
    return None


def _service(slots: dict[str, Any], ctx: Context) -> Service | None:
    return next((s for s in ctx.config.services if s.code == slots.get("service")), None)


def _name(service: Service, ctx: Context) -> str:
    return service.name_en if ctx.lang == "en" else service.name_zh


def _service_name(code: str, ctx: Context) -> str:
    service = next((s for s in ctx.config.services if s.code == code), None)
    return _name(service, ctx) if service else code


def _car_label(slots: dict[str, Any], ctx: Context) -> str:
    vehicle: VehicleInfo | None = next((v for v in ctx.vehicles if v.id == slots.get("vehicle_id")), None)
    if vehicle is None:
        return str(slots.get("plate") or "")
    if vehicle.model:
        return _t(ctx, "car_with_model", plate=vehicle.plate, model=vehicle.model)
    return vehicle.plate


def _normal_plate(plate: str) -> str:
    return re.sub(r"[\s·•.\-・‧∙]", "", fold_width(str(plate))).upper()


def _same_plate(a: str, b: str) -> bool:
    return _normal_plate(a) == _normal_plate(b)


def _upcoming(ctx: Context) -> list[AppointmentInfo]:
    live = [a for a in ctx.appointments if a.starts_at > ctx.now and a.status in ("booked", "confirmed")]
    return sorted(live, key=lambda a: a.starts_at)


def _appointment(slots: dict[str, Any], ctx: Context) -> AppointmentInfo | None:
    return next((a for a in ctx.appointments if a.id == slots.get("appointment_id")), None)


def _appointment_in(text: str, appointments: list[AppointmentInfo]) -> AppointmentInfo | None:
    """An appointment named by its reference (B000123) in the message."""
    match = _REFERENCE.search(fold_width(text))
    if match is None:
        return None
    return next((a for a in appointments if a.reference.upper() == match.group(0).upper()), None)


def _appointment_label(appointment: AppointmentInfo, ctx: Context) -> str:
    return _t(
        ctx,
        "appointment_label",
        when=when_label(appointment.starts_at, ctx),
        service=_service_name(appointment.service, ctx),
    )


def _minutes(appointment: AppointmentInfo) -> int:
    return max(1, int((appointment.ends_at - appointment.starts_at).total_seconds() // 60))


def _calendar(ctx: Context, ignore: int | None = None) -> Calendar:
    return Calendar(ctx.config, ctx.timezone, ctx.booked, ctx.now).without(ignore)


def _zone(ctx: Context) -> ZoneInfo:
    return ZoneInfo(ctx.timezone)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _t(ctx: Context, key: str, **params: Any) -> str:
    return templates.text(f"booking.{key}", ctx.lang, **params)


def day_label(day: date, ctx: Context) -> str:
    """A day as owners read it: 11月24日(周二) / Tue 24 Nov."""
    weekday = templates.labels("booking.weekdays", ctx.lang)[day.weekday()]
    month = templates.labels("booking.months", ctx.lang)[day.month - 1]
    return _t(ctx, "day_format", month=month, day=day.day, weekday=weekday)


def when_label(moment: datetime, ctx: Context) -> str:
    """A start in the dealer's local time: 11月24日(周二) 15:00 / Tue 24 Nov 15:00."""
    local = moment.astimezone(_zone(ctx))
    return f"{day_label(local.date(), ctx)} {local.strftime('%H:%M')}"
