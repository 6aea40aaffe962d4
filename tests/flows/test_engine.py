"""The first flows as pure functions: no database, no clock, no fixtures."""
from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from bot.dealer_config import DayHours, DealerConfig, FaqEntry
from flows import engine
from flows.turn import Context, Handoff, SetOptOut, State
from nlu import IntentScore, Parse

WEEKDAYS_9_TO_6 = {d: DayHours(open=time(9), close=time(18)) for d in range(5)}
CONFIG = DealerConfig(
    hours=WEEKDAYS_9_TO_6,
    faq=[FaqEntry(topic="hours", answer_zh="每天9点到18点", answer_en="9 to 6 daily")],
    rescue_hotline="400-1",
)
# Tuesday 10:00 in Shanghai
OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
# Saturday 23:00 in Shanghai
CLOSED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def ctx(now: datetime = OPEN, lang: str = "zh", name: str = "李女士") -> Context:
    return Context(now=now, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai", config=CONFIG, customer_name=name)


def parse(intent: str, confidence: float = 0.9, text: str = "x", response: str | None = None, ranking=()) -> Parse:  # type: ignore[no-untyped-def]
    return Parse(text=text, intent=IntentScore(intent, confidence), ranking=tuple(ranking), response=response)


def test_greeting_uses_the_owners_name() -> None:
    turn = engine.respond(State(), parse("greet"), ctx())
    assert "李女士您好" in turn.replies[0].text and turn.effects == ()


def test_greeting_in_english_for_english_owners() -> None:
    turn = engine.respond(State(), parse("greet"), ctx(lang="en", name="Tom"))
    assert turn.replies[0].text.startswith("Hello Tom")


def test_request_human_hands_off_at_once_in_staff_hours() -> None:
    turn = engine.respond(State(), parse("request_human"), ctx())
    assert turn.effects == (Handoff("request"),)
    assert "马上回复" in turn.replies[-1].text


def test_request_human_out_of_hours_says_when_a_person_answers() -> None:
    turn = engine.respond(State(), parse("request_human"), ctx(now=CLOSED))
    assert turn.effects == (Handoff("request"),)
    assert "11月30日 09:00" in turn.replies[-1].text  # Monday opening


def test_low_confidence_asks_with_the_top_two_readings() -> None:
    ranking = [IntentScore("book_service", 0.3), IntentScore("greet", 0.25), IntentScore("complaint", 0.2)]
    turn = engine.respond(State(), parse("book_service", 0.3, ranking=ranking), ctx())
    assert "预约保养或维修" in turn.replies[0].text and "投诉或建议" in turn.replies[0].text
    assert turn.state.misses == 1


def test_picking_a_numbered_reading_runs_that_flow() -> None:
    ranking = [IntentScore("roadside_help", 0.3), IntentScore("complaint", 0.25)]
    first = engine.respond(State(), parse("roadside_help", 0.3, ranking=ranking), ctx())
    second = engine.respond(first.state, parse("out_of_scope", 0.2, text="1"), ctx())
    assert second.state.flow == "roadside" and "双闪" in second.replies[0].text


def test_second_miss_offers_a_person_and_no_thanks_declines() -> None:
    first = engine.respond(State(), parse("out_of_scope", 0.9), ctx())
    second = engine.respond(first.state, parse("out_of_scope", 0.9), ctx())
    assert second.replies[0].buttons == ("转人工客服", "不用了")
    third = engine.respond(second.state, parse("out_of_scope", 0.1, text="不用了"), ctx())
    assert third.effects == () and third.state == State()


def test_faq_answers_by_topic_and_offers_a_person_for_unknown_topics() -> None:
    known = engine.respond(State(), parse("ask_question", response="ask_question/hours"), ctx())
    unknown = engine.respond(State(), parse("ask_question", response="ask_question/warranty"), ctx())
    assert known.replies[0].text.endswith("每天9点到18点")  # after the live "open now" line
    assert "转接人工" in unknown.replies[0].text


def test_roadside_gives_safety_advice_and_hotline_first_and_alerts_staff_at_once() -> None:
    turn = engine.respond(State(), parse("roadside_help", text="车坏在路上了"), ctx())
    said = "\n".join(reply.text for reply in turn.replies)
    assert "双闪" in said and "400-1" in said
    assert [type(effect).__name__ for effect in turn.effects] == ["OpenTicket", "AlertStaff"]


def test_complaint_always_reaches_a_person() -> None:
    turn = engine.respond(State(), parse("complaint", text="保养完车门被划了一道 你们要负责"), ctx())
    assert turn.effects[-1] == Handoff("complaint")


def test_a_yes_or_no_with_nothing_asked_is_acknowledged() -> None:
    for intent in ("affirm", "deny"):
        turn = engine.respond(State(), parse(intent), ctx())
        assert "还有什么可以帮您" in turn.replies[0].text and turn.effects == ()


def test_every_intent_the_model_knows_has_a_route_or_the_fallback() -> None:
    from nlu.backends import DATA_DIR
    from nlu.training_data import load_examples

    for intent in {example.intent for example in load_examples(DATA_DIR)}:
        turn = engine.respond(State(), parse(intent), ctx())
        assert turn.replies, intent


def test_until_its_flow_exists_a_survey_answer_reaches_a_person() -> None:
    turn = engine.respond(State(), parse("survey_feedback"), ctx())
    assert turn.effects == (Handoff("survey", False),)


def test_opting_out_in_the_owners_own_words_turns_this_channels_messages_off_and_says_how_to_undo_it() -> None:
    turn = engine.respond(State(), parse("opt_out", text="以后别给我发这些了"), ctx())
    assert turn.effects == (SetOptOut(opted_out=True),)
    assert "回复“订阅”" in turn.replies[0].text

    turn = engine.respond(State(), parse("opt_in", text="还是给我发提醒吧"), ctx())
    assert turn.effects == (SetOptOut(opted_out=False),)


@pytest.mark.parametrize(
    ("intent", "confidence", "text"),
    [("opt_in", 0.9, "我不想再收到你们的提醒"), ("opt_in", 0.6, "提醒的事"), ("opt_out", 0.6, "提醒的事")],
)
def test_an_unsure_or_self_contradicting_subscription_wish_changes_nothing_and_asks_for_the_exact_word(
    intent: str, confidence: float, text: str
) -> None:
    turn = engine.respond(State(), parse(intent, confidence, text=text), ctx())

    assert turn.effects == ()
    assert "回复“退订”" in turn.replies[0].text and "回复“订阅”" in turn.replies[0].text


def test_a_roadside_emergency_in_the_middle_of_a_booking_takes_over_and_the_booking_waits() -> None:
    booking = State(flow="booking", slots={"mode": "book", "step": "time", "service": "minor_service"})

    turn = engine.respond(booking, parse("roadside_help", text="车在高速上爆胎了"), ctx())

    assert turn.state.flow == "roadside"
    assert turn.state.slots["paused"] == {"flow": "booking", "slots": booking.slots}
    assert "继续预约" in turn.replies[-1].text


def test_quitting_leaves_the_flow() -> None:
    turn = engine.respond(State(flow="booking", slots={"step": "time"}), parse("deny", text="算了"), ctx())
    assert turn.state.flow is None and "已为您取消本次办理" in turn.replies[0].text
