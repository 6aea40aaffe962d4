"""Roadside help (道路救援): safety first, open the case at once, then location, then the problem.

domain.md: the owner is stressed and possibly in danger, so every message is short, the rescue
team is alerted in the very first turn, and each question is asked at most once; whatever is
still missing after that the rescue team asks on the phone.

State `roadside`, slots:
- reference: "R000123" (the open ticket)
- location: None, {"latitude", "longitude", "label"} (a WeChat location) or {"text": ...}
- problem: None or flat_tyre | battery | accident | breakdown | locked_out | fuel | other
- asked: the questions asked so far, in order ("location", "problem")
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

from bot.messages import Reply
from flows import templates
from flows.handoff import hand_off
from flows.turn import (
    AlertStaff,
    Context,
    Effect,
    OpenTicket,
    State,
    Turn,
    UpdateTicket,
)
from nlu import Parse
from nlu.entities.places import extract_places

FLOW = "roadside"
# staff alerts are read by the dealer's staff, whose working language is Chinese
STAFF_LANG = "zh"
EARTH_RADIUS_KM = 6371.0088

# The problems in the order of the "what happened?" buttons (roadside.problem_buttons).
PROBLEMS = ("flat_tyre", "battery", "accident", "breakdown", "locked_out", "fuel", "other")

# Keyword table, checked in this order: the first problem with a hit wins. An accident comes
# first because it often brings other damage ("追尾了 轮胎也爆了"); fuel before battery so an
# electric car's "没电了" is a charging job, not a jump start.
PROBLEM_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accident", ("撞", "追尾", "刮蹭", "剐蹭", "事故", "车祸", "碰了", "accident", "crash", "collided", "collision", "rear-ended", "hit ")),
    ("locked_out", ("钥匙锁", "锁车里", "锁在车里", "钥匙丢", "locked out", "locked in", "keys locked", "lost my key", "lost the key")),
    ("flat_tyre", ("爆胎", "没气", "扎胎", "扎了", "轮胎", "胎压", "flat tyre", "flat tire", "tyre", "tire", "puncture", "blowout", "blow-out")),
    ("fuel", ("没油", "油用完", "没有油", "充电", "续航", "电量", "out of fuel", "out of petrol", "out of gas", "ran out", "no fuel", "charging", "needs charg")),
    ("battery", ("没电", "亏电", "电瓶", "蓄电池", "打不着", "点不着", "搭电", "启动不了", "battery", "jump start", "jump-start", "won't start", "wont start", "doesn't start", "will not start")),
    ("breakdown", ("抛锚", "坏了", "熄火", "故障", "趴窝", "开不动", "动不了", "冒烟", "水温", "失灵", "报警", "break down", "broke down", "broken down", "breakdown", "stalled", "engine", "warning light", "smok", "overheat")),
    ("other", ("陷", "泥里", "水淹", "泡水", "stuck", "flood")),
)
# "没电了" means an empty traction battery when the car is electric: that needs charging
EV_WORDS = ("电车", "电动车", "新能源", "纯电", "electric", "ev ")

# Bare place words say nothing about where the owner is: "在高速上" still needs the question.
VAGUE_PLACES = frozenset(
    ("高速", "高速公路", "国道", "省道", "隧道", "服务区", "收费站", "加油站", "充电站", "停车场", "地铁站",
     "立交桥", "立交", "路边", "马路", "小区", "地库", "路上")
)
# Asked where they are, owners answer in words the place extractor does not know
# ("外环往北方向", "体育西路和天河路交叉口"); these hints tell such an answer from "快点".
_LOCATION_HINT = re.compile(
    r"[路街桥站号区市县镇村环楼]|大道|国道|省道|车道|高速|方向|附近|旁边|对面|门口|出口|入口|地库|公里|[KGS]\d"
    r"|\b(?:road|street|avenue|lane|exit|junction|near|highway|motorway|expressway|ring|bridge|car park|station|km|miles?)\b",
    re.IGNORECASE,
)
# answers that carry no location or problem, however they are phrased
_NO_CONTENT_INTENTS = ("affirm", "deny", "thank", "greet", "goodbye", "request_human")


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Answers a roadside message: the first opens the case, later ones fill in what is missing."""
    if state.flow == FLOW and state.slots.get("reference"):
        return _collect(state, parse, ctx)
    return _open(parse, ctx)


def _open(parse: Parse, ctx: Context) -> Turn:
    """Safety advice, the ticket and the staff alert in one turn, then a question or the finish."""
    reference = f"R{ctx.message_id:06d}"
    text = parse.text.strip()
    location = shared_location(ctx) or place_from(parse)
    problem = classify_problem(_owner_words(parse, ctx))
    summary = text or _place_text(location) or reference
    details: dict[str, Any] = {"text": text, "location": location, "problem": problem} | _distance_details(location, ctx)
    place = _place_text(location) or templates.text("roadside.staff_place_unknown", STAFF_LANG)
    effects = (
        OpenTicket(
            reference=reference,
            kind="roadside",
            category=problem or "unknown",
            urgent=True,
            summary=summary,
            sla_minutes=ctx.config.sla_minutes["urgent"],
            details=details,
        ),
        AlertStaff(
            reason="roadside",
            text=templates.text("roadside.staff_alert", STAFF_LANG, reference=reference, summary=summary, place=place),
            urgent=True,
            reference=reference,
        ),
    )
    slots: dict[str, Any] = {"reference": reference, "location": location, "problem": problem, "asked": []}
    safety = Reply(templates.text("roadside.safety", ctx.lang, hotline=_hotline(ctx)))
    question = next_question(slots)
    if question is None:
        return _finish(slots, ctx, lead=(safety,), effects=effects)
    opened = Reply(templates.text("roadside.opened", ctx.lang, reference=reference))
    return _ask(question, slots, ctx, lead=(safety, opened), effects=effects)


def _collect(state: State, parse: Parse, ctx: Context) -> Turn:
    """Takes the owner's answer, records what is new on the ticket, and asks or finishes."""
    slots = dict(state.slots)
    asked = list(slots.get("asked") or [])
    last = asked[-1] if asked else None
    learned: dict[str, Any] = {}
    category = None

    location = shared_location(ctx) or place_from(parse)
    if location is None and last == "location":
        location = location_in_words(parse)
    # a shared position beats a description in words; otherwise the first answer stands
    if location and (not slots.get("location") or (_coords(location) and not _coords(slots["location"]))):
        slots["location"] = learned["location"] = location
        learned |= _distance_details(location, ctx)

    words = _owner_words(parse, ctx)
    problem = (problem_button(words) if last == "problem" else None) or classify_problem(words)
    if problem is None and last == "problem" and words and _has_content(parse):
        # the owner answered the question with something we have no word for: staff read it
        problem = "other"
    if problem and not slots.get("problem"):
        slots["problem"] = category = learned["problem"] = problem
        if problem == "other":
            learned["problem_text"] = parse.text.strip()

    effects = (UpdateTicket(slots["reference"], learned, category),) if learned else ()
    question = next_question(slots)
    # asking for a person means: stop asking, the rescue team takes it from here
    if question is None or parse.name == "request_human":
        return _finish(slots, ctx, lead=(), effects=effects)
    return _ask(question, slots, ctx, lead=(), effects=effects)


def next_question(slots: dict[str, Any]) -> str | None:
    """Location first, then the problem; each at most once. None: nothing more to ask."""
    asked = slots.get("asked") or []
    if not slots.get("location") and "location" not in asked:
        return "location"
    if not slots.get("problem") and "problem" not in asked:
        return "problem"
    return None


def _ask(question: str, slots: dict[str, Any], ctx: Context, *, lead: tuple[Reply, ...], effects: tuple[Effect, ...]) -> Turn:
    if question == "location":
        reply = Reply(templates.text("roadside.ask_location", ctx.lang))
    else:
        reply = Reply(templates.text("roadside.ask_problem", ctx.lang), buttons=templates.labels("roadside.problem_buttons", ctx.lang))
    slots = slots | {"asked": [*(slots.get("asked") or []), question]}
    return Turn(replies=lead + (reply,), state=State(flow=FLOW, slots=slots), effects=effects)


def _finish(slots: dict[str, Any], ctx: Context, *, lead: tuple[Reply, ...], effects: tuple[Effect, ...]) -> Turn:
    """Case number, "the rescue team will call", the free-rescue radius, and an urgent hand-off."""
    minutes = ctx.config.sla_minutes["urgent"]
    lead = lead + (
        Reply(templates.text("roadside.finish", ctx.lang, reference=slots["reference"], minutes=minutes)),
        Reply(radius_text(slots.get("location"), ctx)),
    )
    turn = hand_off(ctx, reason="roadside", urgent=True, lead=lead)
    if not ctx.config.staff_available(ctx.now, ctx.timezone):
        # rescue runs 24 hours: "staff reply at 09:00" would contradict the call promised above
        turn = replace(turn, replies=lead)
    return replace(turn, effects=tuple(effects) + turn.effects)


def radius_text(location: dict[str, Any] | None, ctx: Context) -> str:
    """Says whether the owner is inside the free-rescue radius, or that staff will confirm."""
    if not location:
        return templates.text("roadside.no_location", ctx.lang)
    coords = _coords(location)
    if coords is None or ctx.dealer_location is None:
        return templates.text("roadside.radius_unknown", ctx.lang)
    km = distance_km(ctx.dealer_location, coords)
    radius = ctx.config.rescue_radius_km
    key = "roadside.inside_radius" if km <= radius else "roadside.outside_radius"
    return templates.text(key, ctx.lang, km=_km_text(km), radius=f"{radius:g}")


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (latitude, longitude) points, in km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def classify_problem(text: str) -> str | None:
    """Returns the problem the text names (see PROBLEM_WORDS), or None when it names none."""
    lowered = f"{text.lower()} "  # the trailing space lets "hit " and "ev " end a message
    # "tired" begins with "tire": a worn-out owner is no flat tyre
    lowered = re.sub(r"(?<![a-z])tired", " ", lowered)
    if "没电" in text and any(word in lowered for word in EV_WORDS):
        return "fuel"
    for problem, words in PROBLEM_WORDS:
        if any(_has_word(lowered, word) for word in words):
            return problem
    return None


def problem_button(text: str) -> str | None:
    """Maps a tapped button (its label in either language) or its number to a problem."""
    answer = text.strip()
    if answer.isdigit() and 1 <= int(answer) <= len(PROBLEMS):
        return PROBLEMS[int(answer) - 1]
    for lang in templates.LANGUAGES:
        labels = templates.labels("roadside.problem_buttons", lang)
        if answer in labels:
            return PROBLEMS[labels.index(answer)]
    return None


def shared_location(ctx: Context) -> dict[str, Any] | None:
    """The WeChat location sent with this message, as JSON-ready slots."""
    if ctx.location is None:
        return None
    return {"latitude": ctx.location.latitude, "longitude": ctx.location.longitude, "label": ctx.location.label}


def place_from(parse: Parse) -> dict[str, Any] | None:
    """A place the owner wrote ("广深高速K45"); bare words like "高速" are no location."""
    entity = parse.entity("place")
    # the NLU normally found it; a backend without the place entity (Rasa) still gets one
    value = str(entity.value) if entity else next((str(e.value) for e in extract_places(parse.text)), "")
    value = value.strip()
    if not value or value in VAGUE_PLACES:
        return None
    return {"text": value}


def location_in_words(parse: Parse) -> dict[str, Any] | None:
    """The whole answer as the location, when it was asked for and reads like a place."""
    text = parse.text.strip()
    if parse.name in _NO_CONTENT_INTENTS or not _LOCATION_HINT.search(text):
        return None
    return {"text": text}


def _distance_details(location: dict[str, Any] | None, ctx: Context) -> dict[str, Any]:
    """What staff want on the ticket: how far away the owner is, and whether rescue is free."""
    coords = _coords(location) if location else None
    if coords is None or ctx.dealer_location is None:
        return {}
    km = distance_km(ctx.dealer_location, coords)
    return {"distance_km": round(km, 1), "inside_radius": km <= ctx.config.rescue_radius_km}


def _coords(location: dict[str, Any]) -> tuple[float, float] | None:
    if "latitude" in location and "longitude" in location:
        return (float(location["latitude"]), float(location["longitude"]))
    return None


def _place_text(location: dict[str, Any] | None) -> str:
    if not location:
        return ""
    if location.get("text") or location.get("label"):
        return str(location.get("text") or location.get("label"))
    return f"{location['latitude']:.5f},{location['longitude']:.5f}"


def _owner_words(parse: Parse, ctx: Context) -> str:
    """What the owner wrote. A shared location's text is only the map's name for the place
    ("特来电充电站", "途虎养车轮胎店"): it says where the car is, never what happened to it."""
    text = parse.text.strip()
    if ctx.location is not None and text == ctx.location.label.strip():
        return ""
    return text


def _has_content(parse: Parse) -> bool:
    return parse.name not in _NO_CONTENT_INTENTS and len(parse.text.strip()) >= 2


def _has_word(lowered: str, word: str) -> bool:
    """Chinese words match anywhere; English ones at a word start ("tire" not in "entire")."""
    if not word.isascii():
        return word in lowered
    return re.search(r"(?<![a-z])" + re.escape(word), lowered) is not None


def _km_text(km: float) -> str:
    # "约3.2公里" near the shop, "约12公里" further out: no false precision
    # rounded first, so 9.96 km reads "约10公里", not "约10.0公里"
    km = round(km, 1)
    return f"{km:.1f}" if km < 10 else f"{km:.0f}"


def _hotline(ctx: Context) -> str:
    return ctx.config.rescue_hotline or ctx.dealer_phone
