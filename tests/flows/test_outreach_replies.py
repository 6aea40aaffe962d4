"""Answers to the dealer's reminders: "1" after a maintenance reminder books that car's service and
asks only the time; "1/2/3" after an appointment reminder confirms, moves or cancels it."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bot.dealer_config import DayHours, DealerConfig, Service
from flows import booking, engine, outreach
from flows.turn import (
    AppointmentInfo,
    ConfirmAppointment,
    Context,
    CreateAppointment,
    Handoff,
    State,
    Turn,
    VehicleInfo,
)
from nlu import Entity, IntentScore, Parse

CONFIG = DealerConfig(
    hours={d: DayHours(open=time(9), close=time(18)) for d in range(7)},
    services=[
        Service(code="minor_service", name_zh="小保养", name_en="minor service", minutes=60),
        Service(code="major_service", name_zh="大保养", name_en="major service", minutes=120),
        Service(code="inspection", name_zh="年检", name_en="annual inspection", minutes=60),
    ],
)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
CAMRY = VehicleInfo(id=11, plate="粤B12345", model="凯美瑞")
RAV4 = VehicleInfo(id=12, plate="粤A8K821", model="RAV4")
SENT = "2026-11-23T02:00:00+00:00"
MAINTENANCE = {"kind": "reminder:maintenance", "rule": "maintenance", "sent_at": SENT, "vehicle_id": 11, "plate": "粤B12345",
               "service": "minor_service", "due": "2026-12-01"}
FRIDAY_TEN = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
APPOINTMENT = AppointmentInfo(7, "B000007", "major_service", FRIDAY_TEN, FRIDAY_TEN + timedelta(hours=2), "booked", "粤B12345")
TOMORROW = {"kind": "reminder:appointment_tomorrow", "rule": "appointment_tomorrow", "sent_at": SENT, "appointment_id": 7,
            "appointment_starts_at": FRIDAY_TEN.isoformat()}


def ctx(outreach: dict | None = MAINTENANCE, *, vehicles: tuple[VehicleInfo, ...] = (CAMRY, RAV4),
        appointments: tuple[AppointmentInfo, ...] = (), lang: str = "zh") -> Context:
    return Context(
        now=NOW, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai", config=CONFIG,
        vehicles=vehicles, message_id=88, appointments=appointments, outreach=outreach,
    )


def msg(text: str, intent: str = "survey_feedback", confidence: float = 0.7, *entities: Entity) -> Parse:
    return Parse(text=text, intent=IntentScore(intent, confidence), entities=entities)


def said(turn: Turn) -> str:
    return "\n".join(reply.text for reply in turn.replies)


# ------------------------------------------------------------------------------------------
# service reminders open a booking with the car and the service filled in

YES_PLEASE = [
    msg("1"),
    msg("１"),
    msg("预约", "booking_status", 0.9),
    msg("好的 约一下", "booking_status", 0.53),
    msg("好的", "affirm", 0.95),
    msg("帮我约个时间", "book_service", 0.99),
]


@pytest.mark.parametrize("answer", YES_PLEASE, ids=lambda p: p.text)
def test_answering_a_maintenance_reminder_books_that_car_and_service_and_asks_only_the_time(answer: Parse) -> None:
    turn = engine.respond(State(), answer, ctx())
    slots = turn.state.slots
    assert turn.state.flow == booking.FLOW and slots["step"] == "time"
    assert (slots["service"], slots["vehicle_id"]) == ("minor_service", 11)
    assert "为您的粤B12345预约小保养" in said(turn) and "几点到店" in said(turn)
    assert "什么项目" not in said(turn) and "哪辆车" not in said(turn)
    assert turn.keeps_outreach is False


def test_the_booking_from_a_reminder_tells_the_advisor_where_it_came_from_and_books_on_confirm() -> None:
    turn = engine.respond(State(), msg("1"), ctx())
    turn = engine.respond(turn.state, msg("1"), ctx(outreach=None))  # the first time offered
    assert turn.state.slots["step"] == "confirm" and "小保养" in said(turn)
    booked = engine.respond(turn.state, msg("确认", "affirm", 0.97), ctx(outreach=None))
    [effect] = booked.effects
    assert isinstance(effect, CreateAppointment)
    assert (effect.service, effect.vehicle_id, effect.notes) == ("minor_service", 11, "回复提醒（maintenance）：1")


def test_a_time_in_the_answer_is_taken_too() -> None:
    afternoon = Entity("time", {"date": "2026-11-25", "time": "15:00", "part_of_day": "afternoon"}, 0, 0)
    turn = engine.respond(State(), msg("好的，明天下午三点", "affirm", 0.61, afternoon), ctx())
    assert turn.state.slots["step"] == "confirm" and "11月25日(周三) 15:00" in said(turn)


@pytest.mark.parametrize(
    ("kind", "service"),
    [("reminder:first_service", "minor_service"), ("reminder:inspection", "inspection"), ("reminder:no_show", "major_service")],
)
def test_first_service_inspection_and_any_reminder_naming_a_service_book_the_same_way(kind: str, service: str) -> None:
    turn = engine.respond(State(), msg("1"), ctx(MAINTENANCE | {"kind": kind, "service": service}))
    assert turn.state.slots["service"] == service and turn.state.slots["step"] == "time"


def test_a_service_the_dealer_does_not_offer_is_asked_for() -> None:
    turn = engine.respond(State(), msg("1"), ctx(MAINTENANCE | {"service": "tyre_change"}))
    assert turn.state.slots["step"] == "service" and turn.state.slots["vehicle_id"] == 11


def test_a_car_no_longer_on_the_owners_record_is_not_booked() -> None:
    turn = engine.respond(State(), msg("1"), ctx(MAINTENANCE | {"vehicle_id": 99, "plate": "粤B99999"}))
    assert "vehicle_id" not in turn.state.slots and "为您预约小保养" in said(turn)


def test_no_thanks_closes_the_reminder_politely() -> None:
    turn = engine.respond(State(), msg("不用了", "deny", 0.99), ctx())
    assert turn.effects == () and turn.state == State() and turn.keeps_outreach is False
    assert "不打扰" in said(turn)


def test_an_unrelated_message_is_routed_normally_and_the_reminder_stays_open() -> None:
    turn = engine.respond(State(), msg("你好", "greet", 0.98), ctx())
    assert "您好" in said(turn) and turn.keeps_outreach is True


@pytest.mark.parametrize("kind", ["reminder:tier_care", "reminder:warranty"])
def test_a_reminder_inviting_a_booking_without_a_service_asks_the_service(kind: str) -> None:
    turn = engine.respond(State(), msg("1"), ctx({"kind": kind, "sent_at": SENT, "due": "2026-12-01"}, vehicles=(CAMRY,)))
    assert turn.state.flow == booking.FLOW and turn.state.slots["step"] == "service"
    assert turn.keeps_outreach is False


def test_every_reminder_whose_text_invites_a_booking_is_answered_with_one() -> None:
    from scheduler.rules import BOOKING_RULES

    assert outreach.BOOKING_REMINDERS == {f"reminder:{rule}" for rule in BOOKING_RULES}


def test_a_yes_to_an_insurance_reminder_hands_the_owner_to_the_renewal_specialist() -> None:
    insurance = {"kind": "reminder:insurance", "rule": "insurance", "sent_at": SENT, "vehicle_id": 11, "offset_days": 30}
    turn = engine.respond(State(), msg("好的", "affirm", 0.95), ctx(insurance))
    assert turn.effects == (Handoff("insurance"),) and "续保专员" in said(turn) and turn.keeps_outreach is False
    declined = engine.respond(State(), msg("不用了", "deny", 0.99), ctx(insurance))
    assert declined.effects == () and declined.keeps_outreach is False


def test_thanks_for_birthday_wishes_is_small_talk_and_the_wishes_stay_open() -> None:
    birthday = {"kind": "reminder:birthday", "rule": "birthday", "sent_at": SENT, "due": "2026-11-23"}
    turn = engine.respond(State(), msg("谢谢", "thank", 0.99), ctx(birthday))
    assert "不客气" in said(turn) and turn.keeps_outreach is True


def test_mid_booking_a_number_answers_the_booking_not_the_reminder() -> None:
    asking = State(flow=booking.FLOW, slots={"mode": "book", "step": "service", "notes": "约"})
    turn = engine.respond(asking, msg("2"), ctx())
    assert turn.state.slots["service"] == "major_service" and turn.keeps_outreach is True


def test_an_answer_to_a_reminder_loads_the_calendar() -> None:
    for answer in (msg("1"), msg("好的", "affirm", 0.95), msg("确认", "affirm", 0.97), msg("3")):
        assert engine.needs_calendar(State(), answer)
    assert not engine.needs_calendar(State(), msg("你好", "greet", 0.98))


# ------------------------------------------------------------------------------------------
# appointment reminders: confirm, move, cancel


def test_one_confirms_the_reminded_appointment() -> None:
    turn = engine.respond(State(), msg("1"), ctx(TOMORROW, appointments=(APPOINTMENT,)))
    assert turn.effects == (ConfirmAppointment(7),) and turn.keeps_outreach is False
    assert "已为您确认预约" in said(turn) and "11月27日(周五) 10:00" in said(turn) and "B000007" in said(turn)


def test_confirming_an_appointment_already_confirmed_just_acknowledges() -> None:
    confirmed = AppointmentInfo(7, "B000007", "major_service", FRIDAY_TEN, FRIDAY_TEN + timedelta(hours=2), "confirmed")
    turn = engine.respond(State(), msg("确认", "affirm", 0.97), ctx(TOMORROW, appointments=(confirmed,)))
    assert turn.effects == () and "已为您确认预约" in said(turn)


def test_two_moves_the_reminded_appointment_even_when_the_owner_has_others() -> None:
    other = AppointmentInfo(8, "B000008", "minor_service", FRIDAY_TEN + timedelta(days=3), FRIDAY_TEN + timedelta(days=3, hours=1),
                            "booked")
    turn = engine.respond(State(), msg("2"), ctx(TOMORROW, appointments=(APPOINTMENT, other)))
    assert turn.state.slots["mode"] == "reschedule" and turn.state.slots["appointment_id"] == 7
    assert turn.state.slots["step"] == "time" and turn.keeps_outreach is False


@pytest.mark.parametrize("answer", [msg("3"), msg("明天去不了了", "cancel_booking", 0.4), msg("取消吧", "cancel_booking", 0.9)],
                         ids=lambda p: p.text)
def test_three_or_cannot_come_asks_to_confirm_cancelling_the_reminded_appointment(answer: Parse) -> None:
    turn = engine.respond(State(), answer, ctx(TOMORROW, appointments=(APPOINTMENT,)))
    assert turn.state.slots["mode"] == "cancel" and turn.state.slots["step"] == "confirm_cancel"
    assert "B000007" in said(turn) and turn.keeps_outreach is False


def test_changing_the_time_in_words_moves_the_reminded_appointment_to_that_time() -> None:
    friday_three = Entity("time", {"date": "2026-11-27", "time": "15:00", "part_of_day": None}, 0, 0)
    turn = engine.respond(State(), msg("改期到周五下午3点", "reschedule", 0.95, friday_three), ctx(TOMORROW, appointments=(APPOINTMENT,)))
    assert turn.state.slots["step"] == "confirm_reschedule" and "11月27日(周五) 15:00" in said(turn)


def test_an_appointment_cancelled_meanwhile_is_not_confirmed() -> None:
    turn = engine.respond(State(), msg("1"), ctx(TOMORROW, appointments=()))
    assert turn.effects == () and "已经取消或已过期" in said(turn)


def test_english_owners_confirm_in_english() -> None:
    turn = engine.respond(State(), msg("yes", "affirm", 0.9), ctx(TOMORROW, appointments=(APPOINTMENT,), lang="en"))
    assert turn.effects == (ConfirmAppointment(7),) and said(turn).startswith("Thank you, your appointment is confirmed")
