"""Answers to the reminders the dealer sent: bot/outreach.py remembers the last one in the
conversation state and the pipeline hands it to flows as `Context.outreach`.

- A reminder that invites a booking (its text ends "回复1或“预约”即可预约": maintenance, first
  service, annual inspection, warranty check, missed appointment, tier care, or any reminder
  naming a service): "1", "预约", "好的 约一下", a yes or a booking request opens the booking
  with the reminder's car and service already filled in, so the owner is asked only for what is
  missing, usually the time. "不用了" is thanked and closes the reminder.
- An appointment reminder (tomorrow, soon: "如需改期或取消，直接回复即可"): "1" / 确认 confirms the
  appointment, "2" / 改期 moves it and "3" / 取消 cancels it, through the booking flow with that
  appointment chosen.
- An insurance renewal reminder ("直接回复本消息，专员会与您联系"): a yes hands the owner to staff.

Anything else is no answer: the engine routes it as usual and the reminder stays open.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from bot.messages import Reply
from flows import booking, templates
from flows.handoff import hand_off
from flows.turn import (
    AppointmentInfo,
    ConfirmAppointment,
    Context,
    State,
    Turn,
    VehicleInfo,
)
from nlu import Parse
from nlu.entities.plates import fold_width
from nlu.parse import OUT_OF_SCOPE

# the reminders whose text invites a booking: scheduler/rules.py BOOKING_RULES (a test keeps them equal)
BOOKING_REMINDERS = frozenset(
    f"reminder:{rule}" for rule in ("maintenance", "first_service", "inspection", "warranty", "no_show", "tier_care")
)
APPOINTMENT_REMINDERS = frozenset({"reminder:appointment_tomorrow", "reminder:appointment_soon"})
INSURANCE_REMINDERS = frozenset({"reminder:insurance"})
STAFF_LANG = "zh"  # the booking's notes are read by the service advisor

_BOOK = re.compile(
    r"^\s*(?:1|(?:好的?|行|可以|嗯+|ok|okay|yes|那)?[\s,]*(?:帮我|给我|我要|我想|那就|就)?(?:预约|约)(?:一下|个时间|下|个|上)?"
    r"[吧呀啊]?|book(?: it| now| please| a time)?)\W*$",
    re.IGNORECASE,
)
_YES = re.compile(r"^\s*(好|好的|好啊|行|可以|是|是的|要|需要|嗯+|对|没问题|ok|okay|yes|yeah|sure|y)\W*$", re.IGNORECASE)
_NO = re.compile(
    r"^\s*(不|不用|不用了|不要|不需要|暂时不用|先不用|先不了|以后再说|再说吧|过段时间再说|没空|no|no thanks|not now)\W*$", re.IGNORECASE
)
_CONFIRM = re.compile(
    r"^\s*(1|确认|确定|确认预约|好|好的|可以|会到|会去|准时到|一定到|没问题|嗯+|ok|okay|yes|confirm|confirmed|sure)\W*$", re.IGNORECASE
)
_RESCHEDULE = re.compile(r"^\s*2\W*$|改约|改期|改时间|换个时间|改一下时间|改天|推迟|延后|reschedule", re.IGNORECASE)
_CANCEL = re.compile(r"^\s*3\W*$|(?<!不)(?<!别)(?<!不要)(?<!不用)取消|不去了|去不了|来不了|cancel", re.IGNORECASE)
_RENEW = re.compile(r"^\s*1\W*$|续保|买保险|报价|办理|需要|要的", re.IGNORECASE)


def may_answer(parse: Parse) -> bool:
    """Tells whether the message could answer a reminder, so the pipeline loads the calendar for it
    (a booking or an appointment needs it); cheap and generous, it cannot see the outreach."""
    text = fold_width(parse.text)
    return (
        parse.name == "affirm"
        or any(p.match(text) for p in (_BOOK, _YES, _CONFIRM))
        or any(p.search(text) for p in (_RESCHEDULE, _CANCEL))
    )


def answer(parse: Parse, ctx: Context) -> Turn | None:
    """Reads the message as an answer to the reminder in `ctx.outreach`; None when it is none."""
    outreach = ctx.outreach or {}
    kind = str(outreach.get("kind") or "")
    if not kind.startswith("reminder:"):
        return None
    if kind in APPOINTMENT_REMINDERS:
        return _about_appointment(parse, ctx, outreach)
    if kind in BOOKING_REMINDERS or outreach.get("service"):
        return _about_service(parse, ctx, outreach)
    if kind in INSURANCE_REMINDERS:
        return _about_insurance(parse, ctx)
    return None


def _about_service(parse: Parse, ctx: Context, outreach: dict[str, Any]) -> Turn | None:
    text = fold_width(parse.text)
    understood = _understood(parse, ctx)
    if _NO.match(text) or (understood and parse.name == "deny"):
        return Turn(replies=(Reply(_t(ctx, "declined")),), state=State(), keeps_outreach=False)
    wants = (
        _BOOK.match(text)
        or _YES.match(text)
        or (understood and parse.name in ("affirm", "book_service"))
        or (parse.name in ("affirm", "inform") and parse.entity("time") is not None)  # "好的，明天下午"
    )
    if not wants:
        return None
    known: dict[str, Any] = {
        "notes": templates.text("outreach.booking_note", STAFF_LANG, rule=outreach.get("rule") or _rule(outreach), text=parse.text.strip())
    }
    service = next((s for s in ctx.config.services if s.code == outreach.get("service")), None)
    if service is not None:
        known["service"] = service.code
    vehicle = _vehicle(outreach, ctx)
    if vehicle is not None:
        known["vehicle_id"] = vehicle.id
    turn = booking.start_with(parse, ctx, **known)
    lead: tuple[Reply, ...] = ()
    if service is not None and turn.state.flow == booking.FLOW:
        name = service.name_en if ctx.lang == "en" else service.name_zh
        line = _t(ctx, "lead_car", car=vehicle.plate, service=name) if vehicle else _t(ctx, "lead", service=name)
        lead = (Reply(line),)
    return replace(turn, replies=lead + turn.replies, keeps_outreach=False)


def _about_appointment(parse: Parse, ctx: Context, outreach: dict[str, Any]) -> Turn | None:
    text = fold_width(parse.text)
    understood = _understood(parse, ctx)
    appointment = _appointment(outreach, ctx)
    if _CANCEL.search(text) or (understood and parse.name == "cancel_booking"):
        if appointment is None:
            turn = booking.cancel(State(), parse, ctx)
        else:
            turn = booking.start_with(parse, ctx, mode="cancel", appointment_id=appointment.id)
    elif _RESCHEDULE.search(text) or (understood and parse.name == "reschedule"):
        if appointment is None:
            turn = booking.reschedule(State(), parse, ctx)
        else:
            turn = booking.start_with(parse, ctx, mode="reschedule", appointment_id=appointment.id)
    elif _CONFIRM.match(text) or (understood and parse.name == "affirm"):
        turn = _confirm(appointment, ctx)
    else:
        return None
    return replace(turn, keeps_outreach=False)


def _about_insurance(parse: Parse, ctx: Context) -> Turn | None:
    text = fold_width(parse.text)
    understood = _understood(parse, ctx)
    if _NO.match(text) or (understood and parse.name == "deny"):
        return Turn(replies=(Reply(_t(ctx, "declined")),), state=State(), keeps_outreach=False)
    if not (_RENEW.search(text) or _YES.match(text) or (understood and parse.name == "affirm")):
        return None
    # the reminder promised a renewal specialist: a person takes it from here
    turn = hand_off(ctx, reason="insurance", lead=(Reply(_t(ctx, "insurance")),))
    return replace(turn, keeps_outreach=False)


def _confirm(appointment: AppointmentInfo | None, ctx: Context) -> Turn:
    if appointment is None:
        reply = Reply(_t(ctx, "appointment_gone"), buttons=templates.labels("booking.status.book_button", ctx.lang))
        return Turn(replies=(reply,), state=State())
    service = next((s for s in ctx.config.services if s.code == appointment.service), None)
    name = (service.name_en if ctx.lang == "en" else service.name_zh) if service else appointment.service
    text = _t(ctx, "confirmed", when=booking.when_label(appointment.starts_at, ctx), service=name, reference=appointment.reference)
    effects = (ConfirmAppointment(appointment.id),) if appointment.status == "booked" else ()
    return Turn(replies=(Reply(text),), state=State(), effects=effects)


def _appointment(outreach: dict[str, Any], ctx: Context) -> AppointmentInfo | None:
    """The reminded appointment, if it is still the owner's, still on and still ahead."""
    wanted = outreach.get("appointment_id")
    return next(
        (a for a in ctx.appointments if str(a.id) == str(wanted) and a.status in ("booked", "confirmed") and a.starts_at > ctx.now),
        None,
    )


def _vehicle(outreach: dict[str, Any], ctx: Context) -> VehicleInfo | None:
    """The reminded car, only if it is on this owner's record (a sold car is not booked)."""
    by_id = next((v for v in ctx.vehicles if str(v.id) == str(outreach.get("vehicle_id"))), None)
    if by_id is not None:
        return by_id
    plate = str(outreach.get("plate") or "")
    return next((v for v in ctx.vehicles if plate and v.plate == plate), None)


def _rule(outreach: dict[str, Any]) -> str:
    """The reminder rule ("maintenance") of an outreach kind ("reminder:maintenance")."""
    return str(outreach.get("kind") or "").removeprefix("reminder:")


def _understood(parse: Parse, ctx: Context) -> bool:
    return parse.name != OUT_OF_SCOPE and parse.confidence >= ctx.threshold


def _t(ctx: Context, key: str, **params: Any) -> str:
    return templates.text(f"outreach.{key}", ctx.lang, **params)
