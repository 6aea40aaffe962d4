"""Roadside help: safety first, the case opened at once, then location and problem, one question a turn."""
from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from bot.dealer_config import DayHours, DealerConfig
from flows import roadside
from flows.turn import (
    AlertStaff,
    Context,
    Handoff,
    Location,
    OpenTicket,
    State,
    UpdateTicket,
)
from nlu import Entity, IntentScore, Parse

CONFIG = DealerConfig(
    hours={d: DayHours(open=time(9), close=time(18)) for d in range(5)},
    rescue_hotline="400-800-1234",
    rescue_radius_km=50,
)
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
CLOSED = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # Saturday 23:00 in Shanghai
DEALER = (23.1291, 113.2644)  # Guangzhou
TWELVE_KM_NORTH = Location(23.1291 + 12 / 111.2, 113.2644, "白云区机场路")
SHENZHEN = Location(22.5431, 114.0579, "深圳市福田区")


def ctx(lang: str = "zh", location: Location | None = None, now: datetime = NOW, config: DealerConfig = CONFIG) -> Context:
    return Context(
        now=now, lang=lang, dealer_name="测试店", dealer_phone="020-1", timezone="Asia/Shanghai",
        config=config, message_id=123, location=location, dealer_location=DEALER,
    )


def said(text: str, intent: str = "roadside_help", place: str | None = None) -> Parse:
    entities = ()
    if place:
        start = text.index(place)
        entities = (Entity("place", place, start, start + len(place), place),)
    return Parse(text=text, intent=IntentScore(intent, 0.9), entities=entities)


def texts(turn) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(r.text for r in turn.replies)


# --- the first message -----------------------------------------------------------------------

def test_the_first_message_gives_safety_advice_and_opens_an_urgent_case_with_an_alert() -> None:
    turn = roadside.respond(State(), said("救命，车坏了"), ctx())
    first = turn.replies[0].text
    assert "双闪" in first and "三角警示牌" in first and "150米" in first and "护栏外" in first
    assert "120" in first and "122" in first and "400-800-1234" in first
    ticket, alert = turn.effects[0], turn.effects[1]
    assert isinstance(ticket, OpenTicket) and isinstance(alert, AlertStaff)
    assert ticket.reference == "R000123" and ticket.kind == "roadside" and ticket.urgent
    assert ticket.sla_minutes == 30 and ticket.category == "breakdown"
    assert alert.urgent and alert.reference == "R000123" and "R000123" in alert.text


def test_the_hotline_falls_back_to_the_dealer_phone() -> None:
    turn = roadside.respond(State(), said("需要道路救援"), ctx(config=DealerConfig()))
    assert "020-1" in turn.replies[0].text


def test_with_nothing_known_it_asks_for_the_location_first() -> None:
    turn = roadside.respond(State(), said("需要道路救援"), ctx())
    assert turn.effects[0].category == "unknown"
    assert "R000123" in texts(turn)
    assert "请发送您的位置" in turn.replies[-1].text
    assert turn.state.flow == "roadside"
    assert turn.state.slots == {"reference": "R000123", "location": None, "problem": None, "asked": ["location"]}
    assert not any(isinstance(e, Handoff) for e in turn.effects)


def test_location_and_problem_in_the_first_message_finish_at_once() -> None:
    turn = roadside.respond(State(), said("车在广深高速K45爆胎了", place="广深高速K45"), ctx())
    ticket = turn.effects[0]
    assert ticket.category == "flat_tyre" and ticket.details["location"] == {"text": "广深高速K45"}
    assert turn.effects[-1] == Handoff("roadside", urgent=True)
    assert "会在30分钟内给您打电话" in texts(turn) and "工作人员会与您确认" in texts(turn)
    assert turn.state == State()
    assert not any("请发送您的位置" in r.text or r.buttons for r in turn.replies)


def test_a_shared_location_with_the_problem_finishes_with_the_distance() -> None:
    turn = roadside.respond(State(), said("爆胎了"), ctx(location=TWELVE_KM_NORTH))
    assert "距离本店约12公里，在免费救援范围（50公里）内" in texts(turn)
    assert turn.effects[0].details["distance_km"] == 12.0 and turn.effects[0].details["inside_radius"] is True
    assert turn.effects[-1] == Handoff("roadside", urgent=True)


def test_a_bare_expressway_is_no_location_and_is_asked_for() -> None:
    turn = roadside.respond(State(), said("在高速上爆胎了", place="高速"), ctx())
    assert turn.effects[0].category == "flat_tyre"
    assert "请发送您的位置" in turn.replies[-1].text


# --- collecting what is missing ---------------------------------------------------------------

def test_a_shared_location_is_added_to_the_ticket_then_the_problem_is_asked_with_buttons() -> None:
    first = roadside.respond(State(), said("需要道路救援"), ctx())
    second = roadside.respond(first.state, said("", intent="out_of_scope"), ctx(location=TWELVE_KM_NORTH))
    update = second.effects[0]
    assert isinstance(update, UpdateTicket) and update.reference == "R000123" and update.category is None
    assert update.details["location"]["latitude"] == TWELVE_KM_NORTH.latitude
    assert second.replies[-1].buttons[0] == "爆胎/轮胎没气" and len(second.replies) == 1
    assert second.state.slots["asked"] == ["location", "problem"]


def test_a_location_described_in_words_is_taken_as_it_is() -> None:
    first = roadside.respond(State(), said("需要道路救援"), ctx())
    second = roadside.respond(first.state, said("外环往北方向，刚过第二个出口", intent="inform"), ctx())
    assert second.effects[0] == UpdateTicket("R000123", {"location": {"text": "外环往北方向，刚过第二个出口"}}, None)


def test_a_tapped_button_sets_the_problem_and_finishes() -> None:
    state = State(flow="roadside", slots={"reference": "R000123", "location": {"text": "广州大道中100号"}, "problem": None, "asked": ["problem"]})
    turn = roadside.respond(state, said("电瓶没电/打不着火", intent="inform"), ctx())
    assert turn.effects[0] == UpdateTicket("R000123", {"problem": "battery"}, "battery")
    assert turn.effects[-1] == Handoff("roadside", urgent=True)
    assert "是否在免费救援范围内，工作人员会与您确认" in texts(turn)


def test_a_button_number_from_sms_works_like_the_label() -> None:
    assert roadside.problem_button("3") == "accident"
    assert roadside.problem_button("Keys locked in") == "locked_out"


def test_an_answer_we_cannot_classify_is_kept_as_other() -> None:
    state = State(flow="roadside", slots={"reference": "R000123", "location": {"text": "广州大道中100号"}, "problem": None, "asked": ["problem"]})
    turn = roadside.respond(state, said("车窗玻璃降下去升不上来", intent="inform"), ctx())
    assert turn.effects[0] == UpdateTicket("R000123", {"problem": "other", "problem_text": "车窗玻璃降下去升不上来"}, "other")


def test_each_question_is_asked_only_once() -> None:
    first = roadside.respond(State(), said("钥匙锁车里了"), ctx())
    second = roadside.respond(first.state, said("快点啊", intent="out_of_scope"), ctx())
    assert second.effects[-1] == Handoff("roadside", urgent=True)  # location asked once: staff call
    assert "工作人员会先打电话确认您的具体位置" in texts(second)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("轮胎扎了 没气了", "flat_tyre"),
        ("电瓶亏电 早上打不着了 能来搭个电吗", "battery"),
        ("追尾了 人没事", "accident"),
        ("车在路上抛锚了", "breakdown"),
        ("钥匙锁车里了", "locked_out"),
        ("没油了", "fuel"),
        ("新能源车没电了，开不动", "fuel"),
        ("The car won't start, flat battery", "battery"),
        ("I had a blowout", "flat_tyre"),
        ("我想问一下", None),
    ],
)
def test_problems_are_classified_by_keywords(text: str, problem: str | None) -> None:
    assert roadside.classify_problem(text) == problem


# --- radius and finishing --------------------------------------------------------------------

def test_outside_the_free_radius_a_charge_may_apply() -> None:
    turn = roadside.respond(State(), said("车子抛锚了"), ctx(location=SHENZHEN))
    assert "超出免费救援范围（50公里）" in texts(turn) and "可能会产生费用" in texts(turn)
    assert turn.effects[0].details["inside_radius"] is False


def test_distance_km_is_the_great_circle_distance() -> None:
    assert roadside.distance_km((0.0, 0.0), (1.0, 0.0)) == pytest.approx(111.2, abs=0.1)
    assert 100 < roadside.distance_km(DEALER, (SHENZHEN.latitude, SHENZHEN.longitude)) < 110


def test_finishing_out_of_hours_promises_the_call_not_monday() -> None:
    turn = roadside.respond(State(), said("爆胎了"), ctx(location=TWELVE_KM_NORTH, now=CLOSED))
    assert turn.effects[-1] == Handoff("roadside", urgent=True)
    assert "30分钟内" in texts(turn) and "11月30日" not in texts(turn)


def test_asking_for_a_person_stops_the_questions() -> None:
    first = roadside.respond(State(), said("需要道路救援"), ctx())
    second = roadside.respond(first.state, said("转人工", intent="request_human"), ctx())
    assert second.effects == (Handoff("roadside", urgent=True),) and second.state == State()


def test_english_owners_read_english() -> None:
    first = roadside.respond(State(), said("I need roadside help"), ctx(lang="en"))
    assert first.replies[0].text.startswith("Safety first") and "hazard lights" in first.replies[0].text
    assert "send your location" in first.replies[-1].text
    second = roadside.respond(first.state, said("", intent="out_of_scope"), ctx(lang="en", location=TWELVE_KM_NORTH))
    assert second.replies[-1].buttons[0] == "Flat or punctured tyre"
    third = roadside.respond(second.state, said("Flat or punctured tyre", intent="inform"), ctx(lang="en"))
    assert "Case number R000123" in texts(third) and "about 12 km from us, inside our free rescue area (50 km)" in texts(third)


# --- fixed: a place's name is no problem, "tired" is no tyre, distances read cleanly -----------

CHARGING_STATION = Location(23.1291 + 5 / 111.2, 113.2644, "特来电充电站(天河店)")
TYRE_SHOP = Location(23.1291 + 5 / 111.2, 113.2644, "途虎养车轮胎店")


def test_a_shared_location_named_after_a_charging_station_still_asks_what_happened() -> None:
    turn = roadside.respond(State(), said("特来电充电站(天河店)", intent="out_of_scope"), ctx(location=CHARGING_STATION))
    assert turn.effects[0].category == "unknown"
    assert turn.replies[-1].buttons[0] == "爆胎/轮胎没气"


def test_a_location_shared_when_the_problem_was_asked_is_no_answer_to_it() -> None:
    state = State(flow="roadside", slots={"reference": "R000123", "location": None, "problem": None, "asked": ["location", "problem"]})
    turn = roadside.respond(state, said("途虎养车轮胎店", intent="out_of_scope"), ctx(location=TYRE_SHOP))
    update = turn.effects[0]
    assert isinstance(update, UpdateTicket) and "problem" not in update.details and update.category is None
    assert update.details["location"]["label"] == "途虎养车轮胎店"


def test_a_tired_owner_has_no_flat_tyre() -> None:
    assert roadside.classify_problem("I'm so tired, my car broke down on the ring road") == "breakdown"
    assert roadside.classify_problem("My tire is flat") == "flat_tyre"


def test_a_distance_just_under_ten_km_reads_as_ten() -> None:
    assert roadside._km_text(9.96) == "10" and roadside._km_text(9.94) == "9.9"
