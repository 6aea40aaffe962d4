"""Complaints: classify, flag safety, open one ticket, always reach a person, follow up on the result."""
from __future__ import annotations

from datetime import UTC, datetime, time

from bot.dealer_config import DayHours, DealerConfig
from flows import complaint
from flows.turn import AlertStaff, Context, Handoff, OpenTicket, State, UpdateTicket
from nlu import IntentScore, Parse

CONFIG = DealerConfig(
    hours={d: DayHours(open=time(9), close=time(18)) for d in range(5)},  # Monday to Friday
    rescue_hotline="400-800-1234",
)
# Monday 10:00 in Shanghai: staff at work
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
# Saturday 23:00 in Shanghai: nobody at work until Monday 09:00
CLOSED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def ctx(lang: str = "zh", now: datetime = NOW, message_id: int = 123) -> Context:
    return Context(
        now=now, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai",
        config=CONFIG, message_id=message_id,
    )


def said(text: str, intent: str = "complaint") -> Parse:
    return Parse(text=text, intent=IntentScore(intent, 0.9))


def ticket(turn) -> OpenTicket:  # type: ignore[no-untyped-def]
    return next(e for e in turn.effects if isinstance(e, OpenTicket))


def texts(turn) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(r.text for r in turn.replies)


# --- classes ---------------------------------------------------------------------------------

def test_a_noise_from_the_car_is_product_quality() -> None:
    turn = complaint.respond(State(), said("新车开了一个月，底盘一直有异响"), ctx())
    assert ticket(turn).category == "product_quality"


def test_waiting_and_a_rude_advisor_are_service() -> None:
    turn = complaint.respond(State(), said("保养等了三个小时，服务顾问态度也很差"), ctx())
    assert ticket(turn).category == "service"


def test_overcharging_is_service() -> None:
    assert complaint.classify("结账的时候多收了我200块，收费不透明") == "service"


def test_a_repair_that_did_not_fix_the_car_is_service_not_product() -> None:
    assert complaint.classify("修了两次还是漏油") == "service"


def test_a_suggestion_about_parking_is_other() -> None:
    assert complaint.classify("建议你们店多划一些客户停车位") == "other"


def test_english_complaints_are_classified_too() -> None:
    assert complaint.classify("There is a rattle from the dashboard") == "product_quality"
    assert complaint.classify("I waited three hours and the advisor was rude") == "service"
    assert complaint.classify("A suggestion: more parking spaces please") == "other"


# --- urgency and SLA -------------------------------------------------------------------------

def test_a_brake_complaint_is_urgent_alerts_staff_and_is_due_in_30_minutes() -> None:
    turn = complaint.respond(State(), said("刹车踩下去软软的，差点追尾"), ctx())
    opened = ticket(turn)
    assert opened.urgent and opened.sla_minutes == 30
    alert = next(e for e in turn.effects if isinstance(e, AlertStaff))
    assert alert.urgent and alert.reference == "C000123" and "C000123" in alert.text and "刹车" in alert.text
    assert "30分钟内" in texts(turn)
    assert "不要继续驾驶" in texts(turn) and "400-800-1234" in texts(turn)  # safety first


def test_the_engine_cutting_out_while_driving_is_urgent_but_not_starting_is_not() -> None:
    assert complaint.is_safety_related("开着开着突然熄火了")
    assert complaint.is_safety_related("The engine died on the motorway")
    assert not complaint.is_safety_related("早上车子打不着火")  # 打不着火 contains 着火
    assert not complaint.is_safety_related("车子停着的时候偶尔熄火")


def test_a_non_safety_complaint_is_due_in_240_minutes_without_an_alert() -> None:
    turn = complaint.respond(State(), said("洗车的时候把我的座椅弄脏了，车漆也有划痕"), ctx())
    assert ticket(turn).urgent is False and ticket(turn).sla_minutes == 240
    assert not any(isinstance(e, AlertStaff) for e in turn.effects)


# --- asking what happened --------------------------------------------------------------------

def test_a_generic_complaint_asks_what_happened_then_opens_the_ticket_with_the_answer() -> None:
    first = complaint.respond(State(), said("我要投诉"), ctx())
    assert first.effects == ()
    assert "具体发生了什么" in first.replies[0].text and "抱歉" in first.replies[0].text
    assert first.state.flow == "complaint"

    second = complaint.respond(first.state, said("上周做保养，回来发现后视镜被刮花了", intent="inform"), ctx(message_id=124))
    opened = ticket(second)
    assert opened.reference == "C000124"
    assert opened.summary == "上周做保养，回来发现后视镜被刮花了"
    assert opened.details["text"] == opened.summary and opened.category == "service"
    assert second.state == State()


def test_naming_only_whom_the_complaint_is_about_still_asks_once() -> None:
    turn = complaint.respond(State(), said("我要投诉你们的服务顾问"), ctx())
    assert turn.state.flow == "complaint" and turn.effects == ()


def test_a_generic_english_complaint_is_asked_about_in_english() -> None:
    turn = complaint.respond(State(), said("I want to make a complaint"), ctx(lang="en"))
    assert turn.replies[0].text.startswith("We're very sorry") and "what happened" in turn.replies[0].text


def test_every_complaint_reaches_a_person_in_the_same_turn_as_the_ticket() -> None:
    for text in ("车窗关不严，下雨漏水", "刹车失灵了", "你们的前台电话一直没人接"):
        turn = complaint.respond(State(), said(text), ctx())
        kinds = [type(e) for e in turn.effects]
        assert kinds[0] is OpenTicket and kinds[-1] is Handoff, text
        assert turn.effects[-1].reason == "complaint"


def test_the_reference_comes_from_the_message_id() -> None:
    turn = complaint.respond(State(), said("车漆起泡了，才买半年"), ctx(message_id=123))
    assert ticket(turn).reference == "C000123"
    assert "C000123" in turn.replies[0].text


def test_out_of_hours_the_owner_is_told_when_a_person_answers() -> None:
    turn = complaint.respond(State(), said("空调不制冷，才修过一次"), ctx(now=CLOSED))
    assert "11月30日 09:00" in turn.replies[-1].text
    assert turn.effects[-1] == Handoff("complaint", False)


def test_an_urgent_complaint_out_of_hours_promises_the_duty_call_not_monday() -> None:
    turn = complaint.respond(State(), said("方向盘开着开着突然变得很重"), ctx(now=CLOSED))
    assert "30分钟内" in texts(turn) and "11月30日" not in texts(turn)
    assert turn.effects[-1] == Handoff("complaint", True)


def test_english_owners_read_english() -> None:
    turn = complaint.respond(State(), said("The brakes squeak and the car pulls to the left"), ctx(lang="en"))
    assert ticket(turn).urgent
    assert "within 30 minutes" in texts(turn) and "do not drive on" in texts(turn)


# --- result and follow-up --------------------------------------------------------------------

def test_the_result_message_asks_whether_the_problem_is_solved_with_two_buttons() -> None:
    zh = complaint.result_message("已为您免费更换了后视镜。", "C000123", "zh")
    en = complaint.result_message("We replaced the mirror free of charge.", "C000123", "en")
    assert "已为您免费更换了后视镜。" in zh.text and "C000123" in zh.text and "问题解决了吗" in zh.text
    assert zh.buttons == ("已解决", "还没有")
    assert en.buttons == ("Solved", "Not yet") and "Is the problem solved?" in en.text


def test_solved_thanks_the_owner_and_clears_the_state() -> None:
    state = complaint.followup_state("C000123")
    assert state == State(flow="complaint_followup", slots={"reference": "C000123"})
    turn = complaint.followup(state, said("已解决", intent="affirm"), ctx())
    assert "感谢" in turn.replies[0].text and turn.state == State() and turn.effects == ()


def test_not_solved_reopens_the_ticket_and_hands_off_again() -> None:
    turn = complaint.followup(complaint.followup_state("C000123"), said("还没有", intent="deny"), ctx())
    assert turn.effects[0] == UpdateTicket("C000123", {"reopened": True, "text": "还没有"})
    assert turn.effects[-1] == Handoff("complaint", False)
    assert "抱歉" in turn.replies[0].text and "C000123" in turn.replies[0].text
    assert turn.state == State()


def test_a_new_complaint_text_in_the_follow_up_also_reopens() -> None:
    turn = complaint.followup(complaint.followup_state("C000123"), said("换完以后还是有异响", intent="inform"), ctx())
    assert turn.effects[0] == UpdateTicket("C000123", {"reopened": True, "text": "换完以后还是有异响"})
    assert isinstance(turn.effects[-1], Handoff)


def test_an_unclear_follow_up_answer_is_asked_once_more_then_left_alone() -> None:
    first = complaint.followup(complaint.followup_state("C000123"), said("嗯？", intent="out_of_scope"), ctx())
    assert first.replies[0].buttons == ("已解决", "还没有") and first.effects == ()
    second = complaint.followup(first.state, said("哦", intent="out_of_scope"), ctx())
    assert second.state == State() and second.effects == ()


# --- fixed: withdrawing, and safety words that are no danger ---------------------------------

def test_taking_the_complaint_back_when_asked_what_happened_opens_no_ticket() -> None:
    asked = complaint.respond(State(), said("我要投诉"), ctx()).state
    for answer, intent in (("算了，不投诉了", "deny"), ("没事了，不说了", "out_of_scope"), ("Never mind, forget it", "deny")):
        turn = complaint.respond(asked, said(answer, intent=intent), ctx())
        assert turn.effects == () and turn.state == State(), answer
        assert "不记录投诉" in turn.replies[0].text, answer


def test_an_answer_that_says_what_happened_is_a_complaint_even_after_suan_le() -> None:
    asked = complaint.respond(State(), said("我要投诉"), ctx()).state
    turn = complaint.respond(asked, said("算了不说别的，保养等了三个小时没人理", intent="complaint"), ctx())
    assert ticket(turn).category == "service"


def test_a_bill_for_brake_pads_or_a_steering_wheel_cover_is_no_safety_matter() -> None:
    for text in ("上次换刹车片多收了我200块", "刹车片更换收费太贵了", "I was overcharged for new brake pads",
                 "保养完方向盘套被弄脏了", "The advisor who ignored me should be fired"):
        assert not complaint.is_safety_related(text), text
    turn = complaint.respond(State(), said("上次换刹车片多收了我200块"), ctx())
    assert ticket(turn).urgent is False and not any(isinstance(e, AlertStaff) for e in turn.effects)
    assert "不要继续驾驶" not in texts(turn)


def test_the_brakes_themselves_stay_urgent_whatever_the_bill_says() -> None:
    assert complaint.is_safety_related("刹车片换完刹车还是软，还收了我800块")
    assert complaint.is_safety_related("I paid 800 yuan for brake pads and the brakes still fail")
    assert complaint.is_safety_related("花了20万元买的车，气囊没弹出来")
