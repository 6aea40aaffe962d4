"""Satisfaction surveys as owners answer them: a score in many shapes, thanks, and a low score
turned into a service ticket with staff alerted. Pure: a frozen Context with the survey open."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from bot.dealer_config import DayHours, DealerConfig, Service
from flows import booking, engine, survey
from flows.survey import read_score
from flows.turn import (
    AlertStaff,
    Context,
    Handoff,
    OpenTicket,
    RecordSurveyResponse,
    State,
    Turn,
    UpdateTicket,
)
from nlu import Entity, IntentScore, Parse

CONFIG = DealerConfig(
    hours={d: DayHours(open=time(9), close=time(18)) for d in range(7)},
    services=[Service(code="minor_service", name_zh="小保养", name_en="minor service", minutes=60)],
)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Shanghai
CSAT = {"kind": "survey", "survey_id": 9, "scale": "csat", "sent_at": "2026-11-23T02:00:00+00:00", "outbox_id": 3}
NPS = CSAT | {"scale": "nps"}


def ctx(outreach: dict | None = CSAT, lang: str = "zh", config: DealerConfig = CONFIG) -> Context:
    return Context(
        now=NOW, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai", config=config,
        customer_name="王先生", message_id=77, outreach=outreach,
    )


def msg(text: str, intent: str = "survey_feedback", confidence: float = 0.9, *entities: Entity) -> Parse:
    return Parse(text=text, intent=IntentScore(intent, confidence), entities=entities)


def said(turn: Turn) -> str:
    return "\n".join(reply.text for reply in turn.replies)


def recorded(turn: Turn) -> RecordSurveyResponse:
    [effect] = [e for e in turn.effects if isinstance(e, RecordSurveyResponse)]
    return effect


# ------------------------------------------------------------------------------------------
# reading a score

CSAT_ANSWERS = [
    ("5", 5, ""),
    ("５", 5, ""),
    ("五分", 5, ""),
    ("5分", 5, ""),
    ("非常满意", 5, ""),
    ("十分满意", 5, ""),
    ("满意", 4, ""),
    ("一般", 3, ""),
    ("不满意", 2, ""),
    ("不太满意 价格有点贵", 2, "价格有点贵"),
    ("非常不满意", 1, ""),
    ("很差", 1, ""),
    ("4分，等太久了", 4, "等太久了"),
    ("一般吧 3分", 3, ""),
    ("三分吧", 3, ""),
    ("很满意 小王很专业", 5, "小王很专业"),
    ("不满意 等太久", 2, "等太久"),
    ("2分 洗车没洗干净", 2, "洗车没洗干净"),
    ("满分 服务没得说", 5, "服务没得说"),
    ("五星好评⭐⭐⭐⭐⭐", 5, ""),
    ("⭐⭐⭐⭐", 4, ""),
    ("给个好评", 5, ""),
    ("我给你们5分", 5, ""),
    ("满意 👍👍", 4, ""),
    ("4 out of 5", 4, ""),
    ("4 stars, a bit slow", 4, "a bit slow"),
    ("10/10 great service", 5, "great service"),
    ("great service, 5", 5, "great service"),
    ("very dissatisfied", 1, ""),
    ("10分", 10, ""),  # out of range on 1-5: asked again
    ("十分", 10, ""),
    ("0", 0, ""),
]
NPS_ANSWERS = [
    ("10分", 10, ""),
    ("十分", 10, ""),
    ("十分 顾问态度特别好", 10, "顾问态度特别好"),
    ("0", 0, ""),
    ("给9分", 9, ""),
    ("七分吧 等的时间有点长", 7, "等的时间有点长"),
    ("打个8分吧 休息区可以再改进", 8, "休息区可以再改进"),
    ("非常满意", 10, ""),
    ("满意", 8, ""),
    ("一般", 6, ""),
    ("非常不满意", 0, ""),
    ("5 stars", 10, ""),
    ("4 out of 5", 8, ""),
]


@pytest.mark.parametrize(("text", "score", "comment"), CSAT_ANSWERS)
def test_csat_answers_read_as_scores_with_their_comments(text: str, score: int, comment: str) -> None:
    reading = read_score(text, "csat")
    assert reading is not None and (reading.score, reading.comment) == (score, comment)


@pytest.mark.parametrize(("text", "score", "comment"), NPS_ANSWERS)
def test_nps_answers_read_as_scores_with_their_comments(text: str, score: int, comment: str) -> None:
    reading = read_score(text, "nps")
    assert reading is not None and (reading.score, reading.comment) == (score, comment)


@pytest.mark.parametrize("text", ["5分钟后到", "等了2个小时", "不好意思", "明天下午3点", "粤B12345", "一星期后再说", "你好"])
def test_minutes_hours_times_plates_and_apologies_are_no_scores(text: str) -> None:
    assert read_score(text, "csat") is None


# ------------------------------------------------------------------------------------------
# answering the survey


def test_a_top_score_is_recorded_thanked_and_closes_the_survey() -> None:
    turn = engine.respond(State(), msg("5"), ctx())
    assert turn.effects == (RecordSurveyResponse(9, 5, ""),)
    assert "感谢您的好评（5分）" in said(turn)
    assert turn.keeps_outreach is False and turn.state == State()


def test_a_low_score_with_a_comment_opens_a_service_ticket_alerts_staff_and_promises_a_call() -> None:
    turn = engine.respond(State(), msg("2分，等太久了"), ctx())
    ticket, alert, response = turn.effects
    assert isinstance(ticket, OpenTicket) and isinstance(alert, AlertStaff)
    assert (ticket.reference, ticket.kind, ticket.category, ticket.urgent) == ("C000077", "complaint", "service", False)
    assert "2分" in ticket.summary and "等太久了" in ticket.summary and ticket.sla_minutes == 240
    assert ticket.details == {"source": "survey", "survey_id": 9, "score": 2, "scale": "csat", "comment": "等太久了"}
    assert alert.reference == "C000077" and "王先生" in alert.text and "2分" in alert.text
    assert response == RecordSurveyResponse(9, 2, "等太久了", ticket="C000077")
    assert "非常抱歉" in said(turn) and "打电话" in said(turn)
    assert not any(isinstance(e, Handoff) for e in turn.effects)  # the bot keeps the conversation
    assert turn.keeps_outreach is False and turn.state == State()


def test_a_low_score_without_a_comment_asks_why_once_and_the_reason_goes_to_the_ticket() -> None:
    first = engine.respond(State(), msg("不满意"), ctx())
    assert [type(e).__name__ for e in first.effects] == ["OpenTicket", "AlertStaff", "RecordSurveyResponse"]
    assert "哪里让您不满意" in said(first) and first.state.flow == survey.REASON

    # the pipeline dropped the outreach after the score: the reason arrives without it
    second = engine.respond(first.state, msg("前台态度不好，等了两个小时", "complaint"), ctx(outreach=None))
    assert second.effects == (
        RecordSurveyResponse(9, 2, "前台态度不好，等了两个小时"),
        UpdateTicket("C000077", {"comment": "前台态度不好，等了两个小时"}),
    )
    assert "客户关怀专员" in said(second) and second.state == State()


def test_a_reason_days_later_is_no_reason_and_a_greeting_is_greeted() -> None:
    asked = engine.respond(State(), msg("3"), ctx()).state
    later = replace(ctx(outreach=None), now=NOW + timedelta(days=3))
    turn = engine.respond(asked, msg("在吗", "out_of_scope", 0.3), later)
    assert turn.effects == () and turn.state.flow != survey.REASON
    greeted = engine.respond(asked, msg("你好", "greet", 0.98), ctx(outreach=None))
    assert "王先生您好" in said(greeted) and greeted.effects == ()


def test_a_reminder_sent_after_the_question_takes_the_answer_instead() -> None:
    asked = engine.respond(State(), msg("4"), ctx()).state
    reminder = {"kind": "reminder:maintenance", "sent_at": "2026-11-24T01:00:00+00:00", "service": "minor_service"}
    turn = engine.respond(asked, msg("1"), ctx(outreach=reminder))
    assert turn.state.flow == booking.FLOW and turn.effects == ()


def test_a_middling_score_asks_what_could_be_better_and_no_is_a_fine_answer() -> None:
    first = engine.respond(State(), msg("4"), ctx())
    assert first.effects == (RecordSurveyResponse(9, 4, ""),)
    assert "哪里还可以做得更好" in said(first)

    second = engine.respond(first.state, msg("没有", "deny"), ctx(outreach=None))
    assert second.effects == () and "再次感谢" in said(second) and second.state == State()


def test_a_corrected_score_in_the_reason_is_the_new_answer() -> None:
    first = engine.respond(State(), msg("4"), ctx())
    second = engine.respond(first.state, msg("其实给3分吧"), ctx(outreach=None))
    assert [type(e).__name__ for e in second.effects] == ["OpenTicket", "AlertStaff", "RecordSurveyResponse"]
    assert recorded(second).score == 3


def test_a_score_with_a_comment_asks_nothing_more() -> None:
    turn = engine.respond(State(), msg("4分 休息区咖啡不错"), ctx())
    assert turn.effects == (RecordSurveyResponse(9, 4, "休息区咖啡不错"),)
    assert turn.state == State() and "记下了" in said(turn)


def test_out_of_range_numbers_are_asked_again_politely_and_the_survey_stays_open() -> None:
    for text in ("10分", "0", "十分"):
        turn = engine.respond(State(), msg(text), ctx())
        assert turn.effects == () and turn.keeps_outreach is True
        assert "1到5" in said(turn)


def test_nps_scores_promoters_thanked_and_detractors_ticketed() -> None:
    promoter = engine.respond(State(), msg("十分"), ctx(NPS))
    assert promoter.effects == (RecordSurveyResponse(9, 10, ""),)
    passive = engine.respond(State(), msg("8分"), ctx(NPS))
    assert passive.effects == (RecordSurveyResponse(9, 8, ""),)
    detractor = engine.respond(State(), msg("6"), ctx(NPS))
    assert [type(e).__name__ for e in detractor.effects] == ["OpenTicket", "AlertStaff", "RecordSurveyResponse"]
    assert "满分10分" in detractor.effects[0].summary
    assert "0到10" in said(engine.respond(State(), msg("11"), ctx(NPS)))


def test_a_survey_without_a_scale_uses_the_dealers_kind() -> None:
    outreach = {k: v for k, v in CSAT.items() if k != "scale"}
    turn = engine.respond(State(), msg("9"), ctx(outreach, config=CONFIG.model_copy(update={"survey_kind": "nps"})))
    assert turn.effects == (RecordSurveyResponse(9, 9, ""),)


def test_a_safety_problem_in_the_comment_makes_the_ticket_urgent_gives_safety_advice_and_a_person() -> None:
    turn = engine.respond(State(), msg("1分 修完刹车还是软"), ctx())
    ticket, alert, response, handoff = turn.effects
    assert isinstance(ticket, OpenTicket) and ticket.urgent and ticket.sla_minutes == 30
    assert isinstance(alert, AlertStaff) and alert.urgent and response.ticket == ticket.reference
    assert handoff == Handoff("complaint", urgent=True)
    assert "安全第一" in said(turn) and turn.keeps_outreach is False


def test_english_owners_are_thanked_in_english() -> None:
    turn = engine.respond(State(), msg("5 stars"), ctx(lang="en"))
    assert turn.effects == (RecordSurveyResponse(9, 5, ""),)
    assert said(turn).startswith("Thank you for your great rating")


# ------------------------------------------------------------------------------------------
# messages that are no answer


def test_a_booking_while_the_survey_is_open_is_routed_normally_and_the_survey_stays_open() -> None:
    tomorrow = Entity("time", {"date": "2026-11-25", "time": "15:00", "part_of_day": None}, 0, 0)
    turn = engine.respond(State(), msg("明天下午3点帮我约个小保养", "book_service", 0.95, tomorrow), ctx())
    assert turn.state.flow == booking.FLOW
    assert turn.keeps_outreach is True and not any(isinstance(e, RecordSurveyResponse) for e in turn.effects)


def test_a_complaint_that_says_so_goes_to_the_complaint_flow_and_the_survey_stays_open() -> None:
    turn = engine.respond(State(), msg("我要投诉，你们前台态度很差", "complaint", 0.95), ctx())
    assert any(isinstance(e, Handoff) for e in turn.effects)
    assert not any(isinstance(e, RecordSurveyResponse) for e in turn.effects) and turn.keeps_outreach is True


def test_a_grievance_in_rating_words_is_a_low_score() -> None:
    turn = engine.respond(State(), msg("很差", "complaint", 0.99), ctx())
    assert recorded(turn).score == 1 and turn.keeps_outreach is False


def test_a_question_with_a_rating_word_in_it_is_answered_as_a_question() -> None:
    turn = engine.respond(State(), msg("一般多久保养一次", "ask_question", 0.93), ctx())
    assert turn.effects == () and turn.keeps_outreach is True


def test_a_comment_without_a_score_is_asked_for_the_score_once_and_kept_for_it() -> None:
    first = engine.respond(State(), msg("师傅很专业", "out_of_scope", 0.2), ctx())
    assert first.effects == () and "打几分" in said(first) and first.keeps_outreach is True

    second = engine.respond(first.state, msg("5"), ctx())
    assert second.effects == (RecordSurveyResponse(9, 5, "师傅很专业"),)

    again = engine.respond(first.state, msg("嗯嗯那个", "out_of_scope", 0.2), ctx())
    assert "打几分" not in said(again)  # asked once: no nagging


def test_no_thanks_closes_the_survey_without_a_score() -> None:
    turn = engine.respond(State(), msg("不用了", "deny", 0.99), ctx())
    assert turn.effects == () and turn.keeps_outreach is False and "不打扰" in said(turn)


def test_without_a_survey_open_a_number_is_no_score() -> None:
    turn = engine.respond(State(), msg("5"), ctx(outreach=None))
    assert not any(isinstance(e, RecordSurveyResponse) for e in turn.effects)


# ------------------------------------------------------------------------------------------
# a survey arriving while a booking runs


def booking_asking_the_service() -> State:
    return State(flow=booking.FLOW, slots={"mode": "book", "step": "service", "notes": "想约个时间"})


def test_mid_booking_a_bare_number_answers_the_booking() -> None:
    turn = engine.respond(booking_asking_the_service(), msg("1"), ctx())
    assert turn.state.flow == booking.FLOW and turn.state.slots["service"] == "minor_service"
    assert turn.keeps_outreach is True


def test_mid_booking_an_unmistakable_score_answers_the_survey_and_the_booking_waits() -> None:
    turn = engine.respond(booking_asking_the_service(), msg("5分"), ctx())
    assert turn.effects == (RecordSurveyResponse(9, 5, ""),) and turn.keeps_outreach is False
    assert turn.state.slots[engine.PAUSED]["flow"] == booking.FLOW
    assert "继续预约" in said(turn)
