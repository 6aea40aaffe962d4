"""The booking flow as an owner lives it: service, time, car, pick-up, confirm; then move or cancel."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dealer_config import DayHours, DealerConfig, Service
from flows import booking
from flows.turn import (
    AppointmentInfo,
    Booked,
    CancelAppointment,
    Context,
    CreateAppointment,
    Handoff,
    RescheduleAppointment,
    State,
    Turn,
    VehicleInfo,
)
from nlu import Entity, IntentScore, Parse

SHANGHAI = ZoneInfo("Asia/Shanghai")
SERVICES = [
    Service(code="minor_service", name_zh="小保养", name_en="minor service", minutes=60, price_from=399),
    Service(code="major_service", name_zh="大保养", name_en="major service", minutes=120),
    Service(code="repair", name_zh="维修", name_en="repair", minutes=90),
]
# Mon-Fri 9-18, Saturday mornings, closed on Sunday; Thursday 26 Nov is a holiday
CONFIG = DealerConfig(
    hours={**{d: DayHours(open=time(9), close=time(18)) for d in range(5)}, 5: DayHours(open=time(9), close=time(12))},
    holidays=[date(2026, 11, 26)],
    services=SERVICES,
    bays=2,
    slot_minutes=30,
)
WITH_PICKUP = CONFIG.model_copy(update={"pickup_offered": True})
# Monday 23 Nov 2026, 10:00 in Shanghai
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CAMRY = VehicleInfo(id=1, plate="粤B12345", model="凯美瑞")
RAV4 = VehicleInfo(id=2, plate="粤B67890", model="RAV4")


def ctx(
    *,
    lang: str = "zh",
    config: DealerConfig = CONFIG,
    vehicles: tuple[VehicleInfo, ...] = (CAMRY,),
    booked: tuple[Booked, ...] = (),
    appointments: tuple[AppointmentInfo, ...] = (),
) -> Context:
    return Context(
        now=NOW, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai", config=config,
        vehicles=vehicles, message_id=42, booked=booked, appointments=appointments,
    )


def when(day: str | None = None, at: str | None = None, part: str | None = None) -> Entity:
    value = {"date": day, "time": at, "part_of_day": part, "end_date": None, "grain": "hour" if at else "day"}
    return Entity(entity="time", value=value, start=0, end=0)


def plate(value: str) -> Entity:
    return Entity(entity="plate", value=value, start=0, end=0)


def service(code: str) -> Entity:
    return Entity(entity="service", value=code, start=0, end=0)


def mileage(km: int) -> Entity:
    return Entity(entity="mileage", value=km, start=0, end=0)


def msg(text: str, *entities: Entity, intent: str = "inform", confidence: float = 0.9) -> Parse:
    return Parse(text=text, intent=IntentScore(intent, confidence), entities=entities)


def talk(context: Context, *messages: Parse) -> Turn:
    """Runs a conversation through the booking flow from its start and returns the last turn."""
    turn = booking.respond(State(), messages[0], context)
    for message in messages[1:]:
        turn = booking.respond(turn.state, message, context)
    return turn


def at_shanghai(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


def busy(start: datetime, minutes: int = 60, appointment_id: int | None = None) -> Booked:
    return Booked(start, start + timedelta(minutes=minutes), appointment_id)


def the_effect(turn: Turn) -> Any:
    assert len(turn.effects) == 1, turn.effects
    return turn.effects[0]


TUESDAY = date(2026, 11, 24)
START = msg("明天下午3点给粤B12345做个保养", when("2026-11-24", "15:00", "afternoon"), plate("粤B12345"),
            service("minor_service"), intent="book_service")


# ------------------------------------------------------------------------------------------
# booking step by step and all at once


def test_step_by_step_asks_service_then_time_then_shows_the_summary() -> None:
    c = ctx()
    first = talk(c, msg("我想预约一下", intent="book_service"))
    assert first.state.flow == booking.FLOW and first.state.slots["step"] == "service"
    assert first.replies[-1].buttons == ("小保养", "大保养", "维修")

    second = booking.respond(first.state, msg("1"), c)
    assert second.state.slots["step"] == "time"
    assert second.replies[-1].buttons == ("11月23日(周一) 10:30", "11月23日(周一) 11:00", "11月23日(周一) 11:30")

    third = booking.respond(second.state, msg("明天下午3点", when("2026-11-24", "15:00", "afternoon")), c)
    summary = third.replies[-1]
    assert third.state.slots["step"] == "confirm"
    assert "11月24日(周二) 15:00" in summary.text and "小保养" in summary.text and "粤B12345（凯美瑞）" in summary.text
    assert summary.buttons == ("确认", "修改")


def test_confirming_books_with_the_aware_utc_start_and_the_services_minutes() -> None:
    turn = talk(ctx(), msg("我想预约一下", intent="book_service"), msg("大保养"),
                msg("明天下午3点", when("2026-11-24", "15:00")), msg("确认", intent="affirm"))
    effect = the_effect(turn)
    assert isinstance(effect, CreateAppointment)
    assert effect.starts_at == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert (effect.service, effect.minutes, effect.reference) == ("major_service", 120, "B000042")
    assert (effect.vehicle_id, effect.plate, effect.pickup) == (1, None, False)
    assert effect.notes == "我想预约一下"
    assert turn.state == State()
    assert "B000042" in turn.replies[0].text and "行驶证" in turn.replies[0].text


def test_everything_in_one_message_goes_straight_to_the_summary() -> None:
    turn = talk(ctx(vehicles=(CAMRY, RAV4)), START)
    assert turn.state.slots["step"] == "confirm"
    assert turn.state.slots["vehicle_id"] == 1 and turn.state.slots["notes"] == START.text


def test_a_dealer_service_name_in_the_text_counts_without_an_entity() -> None:
    turn = talk(ctx(), msg("想约个维修", intent="book_service"))
    assert turn.state.slots["service"] == "repair" and turn.state.slots["step"] == "time"


def test_a_service_the_dealer_does_not_offer_is_asked_again_with_its_services() -> None:
    turn = talk(ctx(), msg("做个钣喷", service("bodywork"), intent="book_service"))
    assert turn.state.slots["step"] == "service" and turn.replies[-1].buttons == ("小保养", "大保养", "维修")


def test_the_mileage_is_kept_when_given_and_never_asked() -> None:
    turn = talk(ctx(), msg("3万公里保养，明天下午3点", mileage(30000), service("minor_service"),
                           when("2026-11-24", "15:00"), intent="book_service"))
    assert turn.state.slots["step"] == "confirm" and "30000" in turn.replies[-1].text
    assert the_effect(booking.respond(turn.state, msg("1"), ctx())).mileage == 30000


# ------------------------------------------------------------------------------------------
# times: a day, a part of it, and the times that cannot be booked


def test_a_day_without_a_time_proposes_that_days_free_starts() -> None:
    turn = talk(ctx(), msg("周二做保养", service("minor_service"), when("2026-11-24"), intent="book_service"))
    assert "11月24日(周二)可以预约" in turn.replies[-1].text
    assert turn.replies[-1].buttons == ("11月24日(周二) 09:00", "11月24日(周二) 09:30", "11月24日(周二) 10:00")


def test_a_part_of_day_proposes_starts_in_it() -> None:
    turn = talk(ctx(), msg("明天下午保养", service("minor_service"), when("2026-11-24", part="afternoon"), intent="book_service"))
    assert turn.replies[-1].buttons[0] == "11月24日(周二) 12:00"


def test_a_time_alone_means_today_when_still_ahead() -> None:
    turn = talk(ctx(), msg("三点来保养", service("minor_service"), when(at="15:00"), intent="book_service"))
    assert "11月23日(周一) 15:00" in turn.replies[-1].text


def test_a_past_time_is_refused_politely_with_proposals() -> None:
    turn = talk(ctx(), msg("今天早上8点", service("minor_service"), when("2026-11-23", "08:00", "morning"), intent="book_service"))
    assert "11月23日(周一) 08:00已经过去了" in turn.replies[-1].text
    assert turn.state.slots["step"] == "time" and len(turn.replies[-1].buttons) == 3


def test_a_closed_day_is_refused_with_the_next_open_days_starts() -> None:
    turn = talk(ctx(), msg("周日上午", service("minor_service"), when("2026-11-29", part="morning"), intent="book_service"))
    assert "11月29日(周日)我们不营业" in turn.replies[-1].text
    assert turn.replies[-1].buttons[0] == "11月30日(周一) 09:00"


def test_a_holiday_is_refused_with_proposals() -> None:
    turn = talk(ctx(), msg("周四10点", service("minor_service"), when("2026-11-26", "10:00"), intent="book_service"))
    assert "休息日" in turn.replies[-1].text and turn.replies[-1].buttons[0].startswith("11月27日(周五)")


def test_a_time_outside_opening_hours_is_refused_with_proposals() -> None:
    turn = talk(ctx(), msg("明天晚上8点", service("minor_service"), when("2026-11-24", "20:00", "evening"), intent="book_service"))
    assert "不在我们的营业时间内" in turn.replies[-1].text
    assert turn.replies[-1].buttons == ("11月24日(周二) 16:00", "11月24日(周二) 16:30", "11月24日(周二) 17:00")


def test_a_full_slot_proposes_the_nearest_and_a_number_picks_one() -> None:
    full = busy(at_shanghai(TUESDAY, 15))
    c = ctx(booked=(full, full))
    turn = talk(c, START)
    assert "约满" in turn.replies[-1].text
    assert turn.replies[-1].buttons == ("11月24日(周二) 13:30", "11月24日(周二) 14:00", "11月24日(周二) 16:00")
    picked = booking.respond(turn.state, msg("3"), c)
    assert picked.state.slots["step"] == "confirm" and "11月24日(周二) 16:00" in picked.replies[-1].text


def test_tapping_a_proposed_label_picks_it() -> None:
    c = ctx()
    asked = talk(c, msg("保养", service("minor_service"), intent="book_service"))
    label = asked.replies[-1].buttons[1]
    picked = booking.respond(asked.state, msg(label), c)
    assert picked.state.slots["starts_at"] == "2026-11-23T03:00:00+00:00"  # 11:00 Shanghai


# ------------------------------------------------------------------------------------------
# corrections


def test_changing_the_day_at_the_summary_keeps_the_wished_hour() -> None:
    turn = talk(ctx(), START, msg("不对，改成周五", when("2026-11-27"), intent="deny"))
    assert turn.state.slots["step"] == "confirm" and "11月27日(周五) 15:00" in turn.replies[-1].text


def test_a_new_day_where_the_hour_does_not_fit_proposes_that_days_starts() -> None:
    turn = talk(ctx(), START, msg("改成周六", when("2026-11-28")))
    assert "不在我们的营业时间内" in turn.replies[-1].text
    assert turn.replies[-1].buttons == ("11月28日(周六) 10:00", "11月28日(周六) 10:30", "11月28日(周六) 11:00")


def test_changing_the_service_rechecks_the_time_for_its_duration() -> None:
    late = msg("明天下午5点保养", when("2026-11-24", "17:00"), service("minor_service"), intent="book_service")
    turn = talk(ctx(), late, msg("还是做大保养吧", service("major_service")))
    assert turn.state.slots["step"] == "time" and "不在我们的营业时间内" in turn.replies[-1].text


def test_changing_the_car_at_the_summary() -> None:
    c = ctx(vehicles=(CAMRY, RAV4))
    turn = talk(c, START, msg("换成粤B67890", plate("粤B67890")))
    assert "粤B67890（RAV4）" in turn.replies[-1].text
    assert the_effect(booking.respond(turn.state, msg("确认"), c)).vehicle_id == 2


def test_deny_at_the_summary_asks_what_to_change_and_then_asks_it_again() -> None:
    c = ctx()
    change = talk(c, START, msg("修改"))
    assert change.state.slots["step"] == "change"
    assert change.replies[-1].buttons == ("服务项目", "预约时间", "车辆")
    again = booking.respond(change.state, msg("2"), c)
    assert again.state.slots["step"] == "time" and again.state.slots["starts_at"] is None


def test_changing_the_car_of_an_owner_with_one_car_asks_for_it() -> None:
    c = ctx()
    asked = talk(c, START, msg("修改"), msg("车辆"))
    assert asked.state.slots["step"] == "vehicle" and asked.replies[-1].buttons == ("粤B12345",)


# ------------------------------------------------------------------------------------------
# the car


def test_several_cars_are_asked_for_by_plate_and_picked_by_number() -> None:
    c = ctx(vehicles=(CAMRY, RAV4))
    asked = talk(c, msg("明天下午3点保养", service("minor_service"), when("2026-11-24", "15:00"), intent="book_service"))
    assert asked.state.slots["step"] == "vehicle" and asked.replies[-1].buttons == ("粤B12345", "粤B67890")
    picked = booking.respond(asked.state, msg("2"), c)
    assert picked.state.slots["vehicle_id"] == 2 and picked.state.slots["step"] == "confirm"


def test_an_unknown_valid_plate_is_booked_as_a_new_car() -> None:
    c = ctx(vehicles=(CAMRY, RAV4))
    asked = talk(c, msg("明天下午3点保养", service("minor_service"), when("2026-11-24", "15:00"), intent="book_service"))
    summary = booking.respond(asked.state, msg("粤A88888", plate("粤A88888")), c)
    assert "粤A88888" in summary.replies[-1].text
    effect = the_effect(booking.respond(summary.state, msg("确认"), c))
    assert (effect.vehicle_id, effect.plate) == (None, "粤A88888")


def test_an_owner_without_cars_on_record_is_asked_for_the_plate() -> None:
    turn = talk(ctx(vehicles=()), msg("明天下午3点保养", service("minor_service"), when("2026-11-24", "15:00"), intent="book_service"))
    assert turn.state.slots["step"] == "vehicle" and "车牌号" in turn.replies[-1].text and turn.replies[-1].buttons == ()


def test_an_invalid_plate_is_said_and_asked_again() -> None:
    c = ctx(vehicles=(CAMRY, RAV4))
    asked = talk(c, msg("明天下午3点保养", service("minor_service"), when("2026-11-24", "15:00"), intent="book_service"))
    again = booking.respond(asked.state, msg("粤B1234"), c)
    assert "不是有效的车牌号" in again.replies[0].text
    assert again.state.slots["step"] == "vehicle" and again.state.misses == 1


# ------------------------------------------------------------------------------------------
# pick-up, confirmation, a slot taken meanwhile


def test_pickup_is_not_asked_when_the_dealer_does_not_offer_it() -> None:
    turn = talk(ctx(), START)
    assert "取送车" not in turn.replies[-1].text and turn.state.slots["pickup"] is False


def test_pickup_is_asked_when_offered_and_goes_into_the_booking() -> None:
    c = ctx(config=WITH_PICKUP)
    asked = talk(c, START)
    assert asked.state.slots["step"] == "pickup" and asked.replies[-1].buttons == ("需要", "不需要")
    summary = booking.respond(asked.state, msg("需要"), c)
    assert "上门取送车：需要" in summary.replies[-1].text
    done = booking.respond(summary.state, msg("确认"), c)
    assert the_effect(done).pickup is True and "取送车司机" in done.replies[0].text


def test_a_slot_taken_meanwhile_proposes_the_next_free_starts() -> None:
    turn = talk(ctx(), START, msg("确认"))
    if_taken = the_effect(turn).if_taken
    assert isinstance(if_taken, Turn)
    assert "刚刚被其他客户约走了" in if_taken.replies[-1].text
    assert "11月24日(周二) 15:00" not in if_taken.replies[-1].buttons
    assert if_taken.replies[-1].buttons == ("11月24日(周二) 14:00", "11月24日(周二) 14:30", "11月24日(周二) 15:30")
    assert if_taken.state.flow == booking.FLOW and if_taken.state.slots["step"] == "time"
    assert if_taken.state.slots["starts_at"] is None


# ------------------------------------------------------------------------------------------
# misunderstanding, English, and what the pipeline loads


def test_a_message_with_nothing_usable_reasks_with_a_hint_then_hands_off() -> None:
    c = ctx()
    asked = talk(c, msg("我想预约", intent="book_service"))
    first = booking.respond(asked.state, msg("嗯嗯啊", intent="out_of_scope", confidence=0.2), c)
    assert first.state.misses == 1 and first.state.slots["step"] == "service"
    assert "没认出" in first.replies[0].text and first.replies[-1].buttons == ("小保养", "大保养", "维修")
    second = booking.respond(first.state, msg("嗯嗯啊", intent="out_of_scope", confidence=0.2), c)
    assert second.effects == (Handoff("booking"),) and second.state == State()


def test_a_useful_answer_resets_the_misses() -> None:
    c = ctx()
    missed = talk(c, msg("我想预约", intent="book_service"), msg("啊？"))
    assert booking.respond(missed.state, msg("2"), c).state.misses == 0


def test_english_owners_get_english_texts() -> None:
    turn = talk(ctx(lang="en"), START)
    summary = turn.replies[-1]
    assert "Tue 24 Nov 15:00" in summary.text and "minor service" in summary.text
    assert summary.buttons == ("Confirm", "Change")
    done = booking.respond(turn.state, msg("Confirm"), ctx(lang="en"))
    assert done.replies[0].text.startswith("You are booked! Your reference is B000042.")


def test_the_calendar_is_needed_only_around_bookings() -> None:
    assert booking.needs_calendar(State(), msg("x", intent="book_service"))
    assert booking.needs_calendar(State(flow=booking.FLOW), msg("x", intent="greet"))
    assert not booking.needs_calendar(State(), msg("x", intent="complaint"))


# ------------------------------------------------------------------------------------------
# status, reschedule, cancel


def appointment(id_: int, day: date, hour: int, code: str = "minor_service", minutes: int = 60) -> AppointmentInfo:
    start = at_shanghai(day, hour)
    return AppointmentInfo(id=id_, reference=f"B{id_:06d}", service=code, starts_at=start,
                           ends_at=start + timedelta(minutes=minutes), status="booked", plate="粤B12345")


WEDNESDAY_10 = appointment(7, date(2026, 11, 25), 10)
FRIDAY_14 = appointment(8, date(2026, 11, 27), 14, "repair", 90)
PAST_ONE = appointment(3, date(2026, 11, 20), 10)


def test_status_without_appointments_offers_to_book() -> None:
    turn = booking.status(State(), msg("我的预约", intent="booking_status"), ctx(appointments=(PAST_ONE,)))
    assert "没有待进行的预约" in turn.replies[0].text and turn.replies[0].buttons == ("预约保养维修",)


def test_status_lists_the_upcoming_appointments() -> None:
    one = booking.status(State(), msg("我的预约", intent="booking_status"), ctx(appointments=(WEDNESDAY_10,)))
    assert "B000007：11月25日(周三) 10:00，小保养" in one.replies[0].text
    two = booking.status(State(), msg("我的预约", intent="booking_status"), ctx(appointments=(FRIDAY_14, WEDNESDAY_10)))
    lines = two.replies[0].text.splitlines()
    assert lines[1].startswith("预约号B000007") and lines[2].startswith("预约号B000008")


def test_reschedule_without_an_appointment_says_so() -> None:
    turn = booking.reschedule(State(), msg("改时间", intent="reschedule"), ctx())
    assert "没有可以修改的预约" in turn.replies[0].text and turn.effects == ()


def test_reschedule_one_appointment_ignores_its_own_booking_and_moves_it() -> None:
    own = busy(WEDNESDAY_10.starts_at, appointment_id=7)
    other = busy(WEDNESDAY_10.starts_at, appointment_id=9)
    c = ctx(appointments=(WEDNESDAY_10,), booked=(own, other))
    asked = booking.reschedule(State(), msg("帮我改个时间", intent="reschedule"), c)
    assert asked.state.slots["step"] == "time" and "11月25日(周三) 10:00" in asked.replies[-1].text
    confirm = booking.respond(asked.state, msg("改到10点半", when("2026-11-25", "10:30")), c)
    assert confirm.state.slots["step"] == "confirm_reschedule"
    assert "从11月25日(周三) 10:00改到11月25日(周三) 10:30" in confirm.replies[-1].text
    done = booking.respond(confirm.state, msg("确认修改"), c)
    effect = the_effect(done)
    assert isinstance(effect, RescheduleAppointment)
    assert (effect.appointment_id, effect.minutes) == (7, 60)
    assert effect.starts_at == datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    assert effect.if_taken is not None and done.state == State()


def test_reschedule_with_two_appointments_asks_which_then_takes_the_time() -> None:
    c = ctx(appointments=(WEDNESDAY_10, FRIDAY_14))
    asked = booking.reschedule(State(), msg("改时间", intent="reschedule"), c)
    assert asked.state.slots["step"] == "appointment"
    assert asked.replies[-1].buttons == ("11月25日(周三) 10:00 小保养", "11月27日(周五) 14:00 维修")
    chosen = booking.respond(asked.state, msg("2"), c)
    assert chosen.state.slots["appointment_id"] == 8 and chosen.state.slots["step"] == "time"
    confirm = booking.respond(chosen.state, msg("下周一上午10点", when("2026-11-30", "10:00")), c)
    assert the_effect(booking.respond(confirm.state, msg("1"), c)).minutes == 90


def test_reschedule_with_the_time_in_the_first_message_goes_to_confirmation() -> None:
    c = ctx(appointments=(WEDNESDAY_10,))
    turn = booking.reschedule(State(), msg("改到周五下午3点", when("2026-11-27", "15:00"), intent="reschedule"), c)
    assert turn.state.slots["step"] == "confirm_reschedule"
    again = booking.respond(turn.state, msg("再想想"), c)
    assert again.state.slots["step"] == "time" and again.effects == ()


def test_cancel_without_an_appointment_says_so() -> None:
    turn = booking.cancel(State(), msg("取消预约", intent="cancel_booking"), ctx())
    assert "没有可以取消的预约" in turn.replies[0].text and turn.state == State()


def test_cancel_one_appointment_after_confirmation() -> None:
    c = ctx(appointments=(WEDNESDAY_10,))
    asked = booking.cancel(State(), msg("取消预约", intent="cancel_booking"), c)
    assert "B000007" in asked.replies[0].text and asked.replies[0].buttons == ("确认取消", "保留预约")
    done = booking.respond(asked.state, msg("确认取消"), c)
    assert done.effects == (CancelAppointment(7),) and done.state == State()


def test_cancel_with_two_appointments_asks_which_and_no_keeps_it() -> None:
    c = ctx(appointments=(WEDNESDAY_10, FRIDAY_14))
    asked = booking.cancel(State(), msg("取消预约", intent="cancel_booking"), c)
    chosen = booking.respond(asked.state, msg("2"), c)
    assert "B000008" in chosen.replies[0].text
    kept = booking.respond(chosen.state, msg("不用了", intent="deny"), c)
    assert kept.effects == () and "保留" in kept.replies[0].text


def test_cancel_by_reference_picks_that_appointment() -> None:
    c = ctx(appointments=(WEDNESDAY_10, FRIDAY_14))
    asked = booking.cancel(State(), msg("取消B000008", intent="cancel_booking"), c)
    assert asked.state.slots["appointment_id"] == 8 and asked.state.slots["step"] == "confirm_cancel"


def test_mid_booking_a_wish_to_move_an_existing_appointment_starts_rescheduling() -> None:
    c = ctx(appointments=(WEDNESDAY_10,))
    turn = talk(c, msg("我想预约", intent="book_service"), msg("我想改一下之前的预约", intent="reschedule"))
    assert turn.state.slots["mode"] == "reschedule" and turn.state.slots["appointment_id"] == 7


def test_tapping_change_at_the_summary_changes_this_booking_even_with_an_older_appointment() -> None:
    # "修改" reads as a reschedule intent; at the summary it is the button, not an older appointment
    c = ctx(appointments=(WEDNESDAY_10,))
    turn = talk(c, START, msg("修改", intent="reschedule", confidence=0.86))
    assert turn.state.slots["mode"] == "book" and turn.state.slots["step"] == "change"
    assert turn.replies[-1].buttons == ("服务项目", "预约时间", "车辆")


def test_keep_it_when_asked_to_confirm_a_cancellation_keeps_the_appointment() -> None:
    # the button "保留预约" reads as booking_status; it is the answer to the question, not a status request
    c = ctx(appointments=(WEDNESDAY_10,))
    asked = booking.cancel(State(), msg("取消预约", intent="cancel_booking"), c)
    kept = booking.respond(asked.state, msg("保留预约", intent="booking_status", confidence=0.82), c)
    assert kept.effects == () and kept.state == State() and "保留" in kept.replies[0].text


def test_asking_for_the_appointments_mid_booking_still_lists_them() -> None:
    c = ctx(appointments=(WEDNESDAY_10,))
    turn = talk(c, msg("我想预约", intent="book_service"), msg("我的预约", intent="booking_status"))
    assert "B000007" in turn.replies[0].text and turn.state.flow == booking.FLOW
