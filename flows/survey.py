"""Satisfaction surveys (满意度回访): read the owner's answer as a score, thank them, and treat a low
score as what domain.md calls it, a complaint not yet made: a ticket, a staff alert, a call back.

The scheduler sends the survey; bot/outreach.py remembers it in the conversation state and the
pipeline hands it to flows as `Context.outreach` = {"kind": "survey", "survey_id", "scale":
"csat" (1-5) | "nps" (0-10), ...}. While it is open, flows/engine.py shows the owner's messages
here first: a score answers it (the turn says `keeps_outreach=False`), anything else is routed as
usual and the survey stays open.

States:
- no flow: the survey is open; the slot `survey_comment` keeps a comment that came without a
  score, for the score asked for next (asked once).
- `survey_reason`: a score came without a reason and we asked for one, once; slots
  {"survey_id", "scale", "score", "ticket" (the low-score ticket's reference, or ""), "asked_at"}.
  A reason comes within REASON_HOURS; a later message starts afresh.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.messages import Reply
from flows import complaint, templates
from flows.handoff import hand_off
from flows.turn import (
    AlertStaff,
    Context,
    Effect,
    OpenTicket,
    RecordSurveyResponse,
    State,
    Turn,
    UpdateTicket,
)
from nlu import Parse
from nlu.entities.plates import fold_width
from nlu.parse import OUT_OF_SCOPE

REASON = "survey_reason"
COMMENT = "survey_comment"  # state slot: a comment that came before its score
REASON_HOURS = 48
STAFF_LANG = complaint.STAFF_LANG

SCALES: dict[str, tuple[int, int]] = {"csat": (1, 5), "nps": (0, 10)}
# at or below: a complaint not yet made (CSAT 1-3; NPS detractors 0-6)
LOW = {"csat": 3, "nps": 6}
# at or above: a plain thank-you, no question asked (CSAT 5; NPS promoters 9-10)
TOP = {"csat": 5, "nps": 9}
# satisfaction words read on the 1-5 scale; on the 0-10 scale they become these scores
CSAT_TO_NPS = {5: 10, 4: 8, 3: 6, 2: 3, 1: 0}

# Intents that say the message is about something else even if it contains a loose number or a
# rating word ("一般多久保养一次" is a question, "明天帮我约一下 2个人" a booking): routed as usual.
ELSEWHERE = frozenset(
    {"ask_question", "book_service", "reschedule", "cancel_booking", "booking_status", "roadside_help", "request_human",
     "opt_out", "opt_in"}
)
# What a message with only a loose number or a rating word may be classified as and still rate:
# "good morning" (greet) or "recommend a good movie" (out_of_scope, confident) rate nothing.
RATING_INTENTS = frozenset({"survey_feedback", "complaint", "affirm", "deny", "thank", "inform"})
# a grievance that says it is one ("我要投诉") goes to the complaint flow, whose person takes it
_COMPLAINS = re.compile(r"投诉|complain", re.IGNORECASE)

# ------------------------------------------------------------------------------------------
# reading a score

# Rating words on the 1-5 scale. The longest word found wins, so 不满意 beats 满意 and 不太满意
# beats 太满意; the English ones match whole words.
WORDS: dict[str, int] = {
    **dict.fromkeys(
        ("非常满意", "很满意", "十分满意", "特别满意", "超级满意", "太满意", "相当满意", "非常非常满意", "满分", "好评",
         "五星好评", "非常好", "特别好", "太好了", "超赞", "完美", "很棒", "非常棒", "太棒了", "没得说",
         "very satisfied", "extremely satisfied", "excellent", "perfect", "outstanding", "amazing", "very happy"),
        5,
    ),
    **dict.fromkeys(
        ("满意", "比较满意", "挺满意", "还算满意", "基本满意", "还不错", "不错", "挺好", "很好", "蛮好", "还挺好",
         "satisfied", "happy", "good", "great", "nice", "not bad"),
        4,
    ),
    **dict.fromkeys(
        ("一般", "一般般", "还行", "还可以", "凑合", "还凑合", "马马虎虎", "普通", "中规中矩", "过得去",
         "average", "so-so", "so so", "mediocre"),
        3,
    ),
    **dict.fromkeys(
        ("不满意", "不太满意", "不怎么满意", "不是很满意", "不够满意", "失望", "有点失望", "不好", "不太好", "不怎么样",
         "比较差", "较差", "有点差",
         "dissatisfied", "unsatisfied", "not satisfied", "not happy", "unhappy", "poor", "bad", "disappointed",
         "not good", "not great"),
        2,
    ),
    **dict.fromkeys(
        ("非常不满意", "很不满意", "特别不满意", "十分不满意", "极不满意", "太不满意", "非常差", "很差", "太差",
         "特别差", "极差", "真差", "差评", "差劲", "糟糕", "太糟", "很糟", "太烂", "很烂", "非常失望", "很失望",
         "very dissatisfied", "very unsatisfied", "terrible", "awful", "horrible", "very bad", "very poor", "worst"),
        1,
    ),
}
# phrases that contain a rating word without rating anything: "sorry", "about", "usually"
NEUTRAL = ("不好意思", "差不多", "好不好", "满不满意", "满意吗", "一般来说", "一般情况",
           "good morning", "good afternoon", "good evening", "good night", "good day")
# one alternation, longest first: at each position the longest word matches
_WORD = re.compile(
    "|".join(
        rf"(?<![a-z]){re.escape(word)}(?![a-z])" if word.isascii() else re.escape(word)
        for word in sorted(WORDS, key=len, reverse=True)
    )
)
# owners on traditional-character keyboards (港澳台, 繁体输入法): 非常滿意 is 非常满意
_SIMPLIFIED = str.maketrans("滿錯極還夠麼讚勁評掛點鐘顆", "满错极还够么赞劲评挂点钟颗")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"(?P<n>(?<![\d.])\d{1,3}(?:\.\d+)?)"
_CN = r"(?P<c>[一二两三四五六七八九]?十[一二三四五六七八九]?|[零〇一二两三四五六七八九])"
_GIVE = r"(?:我?(?:给|打|评)(?:个|了|你们|您)?\s*)"  # 给9分, 打个8分, 我给你们5分
_UNIT = r"\s*(?P<u>分(?!钟)|颗星|星(?!期)|points?\b|pts\b|stars?\b)"
_MARKED = re.compile(rf"{_GIVE}?(?:{_NUM}|{_CN}){_UNIT}", re.IGNORECASE)
_GIVEN = re.compile(rf"{_GIVE}{_NUM}(?![\d.])")  # 给9 / 打10: the verb marks it as a score
_RATIO = re.compile(r"(?<![\d.])(?P<n>\d{1,3})\s*(?:/|out of)\s*(?P<d>5|10|100)(?!\d)", re.IGNORECASE)
_STARS = re.compile(r"[⭐★🌟]+")
_FULL_MARKS = re.compile(r"满分|💯|百分百")
_WHOLE = re.compile(rf"^\s*{_GIVE}?(?:{_NUM}|{_CN})\s*[吧啊呀哦!.~。]*\s*$")
_LOOSE = re.compile(r"(?<![\w.])\d{1,2}(?!\w|\.\d)")
# what a number counts when it is no score: hours, days, kilometres, money, times, dates...
_UNIT_AFTER = re.compile(
    r"\s*(?:小时|分钟|天|周|个月|月|年|公里|千米|km|块|元|万|千|百|点|号|日|次|个|辆|岁|%|hours?|hrs?|days?|weeks?|"
    r"months?|years?|minutes?|mins?|kms?|yuan|rmb|times|am|pm|o'?clock)",
    re.IGNORECASE,
)
# what is left of a message that only rated: particles, punctuation, the verb
_FILLER = re.compile(r"[\s\W_吧啊呀哦呢嘛哈了的给打个我]+")
_EDGE = re.compile(r"^[\s\W_吧啊呀哦呢嘛哈了]+|[\s\W_]+$")  # "4分吧，等太久了！" -> 等太久了
_ASCII_WORD = re.compile(r"[a-z][a-z' -]*[a-z]|[a-z]")


@dataclass(frozen=True, slots=True)
class Reading:
    """A score read from a message, with what else the owner said.

    `how` says how sure the reading is: "marked" (5分, 五星, 满分, 8/10, 给9), "number" (the
    whole message is a number), "loose" (a number among words: "great service, 5"), "word"
    (满意, 一般). A loose number or a word does not answer a message meant as something else.
    """

    score: int
    comment: str
    how: str


def read_score(text: str, scale: str = "csat") -> Reading | None:
    """Reads an owner's answer to a survey on its scale; the score may be out of range."""
    folded = fold_width(text)
    plain = folded.translate(_SIMPLIFIED)  # one character for one: spans fit both
    found = _marked(plain, scale) or _whole(plain) or _loose(plain) or _word(plain, scale)
    if found is None:
        return None
    score, (start, end), how = found
    return Reading(score, _comment(folded, start, end), how)


def in_range(score: int, scale: str) -> bool:
    low, high = SCALES[scale]
    return low <= score <= high


def _marked(text: str, scale: str) -> tuple[int, tuple[int, int], str] | None:
    ratio = _RATIO.search(text)
    if ratio is not None:
        top = SCALES[scale][1]
        value = int(ratio["n"]) / int(ratio["d"]) * top
        return max(SCALES[scale][0], _round(value)), ratio.span(), "marked"
    for match in _MARKED.finditer(text):
        if match["c"] == "十" and match["u"] == "分" and _adverb_follows(text, match.end()):
            continue  # 十分满意 is "very satisfied", not ten points
        value = _value(match)
        if value == 100:
            value = SCALES[scale][1]  # "100分" is how full marks are said
        if match["u"] in ("星", "颗星") or match["u"].lower().startswith("star"):
            value = _from_csat(value, scale) if value <= 5 else value
        return value, match.span(), "marked"
    stars = _STARS.search(text)
    if stars is not None:
        count = sum(len(m.group()) for m in _STARS.finditer(text))
        return _from_csat(min(count, 5), scale), stars.span(), "marked"
    full = _FULL_MARKS.search(text)
    if full is not None:
        return SCALES[scale][1], full.span(), "marked"
    given = _GIVEN.search(text)
    if given is not None and not _UNIT_AFTER.match(text, given.end()):
        return _value(given), given.span(), "marked"
    return None


def _whole(text: str) -> tuple[int, tuple[int, int], str] | None:
    match = _WHOLE.match(text)
    return (_value(match), match.span(), "number") if match else None


def _loose(text: str) -> tuple[int, tuple[int, int], str] | None:
    numbers = [m for m in _LOOSE.finditer(text) if not _UNIT_AFTER.match(text, m.end())]
    if len({m.group() for m in numbers}) != 1:
        return None  # none, or several: not a score we can tell
    return int(numbers[0].group()), numbers[0].span(), "loose"


def _word(text: str, scale: str) -> tuple[int, tuple[int, int], str] | None:
    lowered = text.lower()
    for phrase in NEUTRAL:
        lowered = lowered.replace(phrase, " " * len(phrase))  # same length: spans stay right
    best: re.Match[str] | None = None
    for match in _WORD.finditer(lowered):
        if best is None or len(match.group()) > len(best.group()):
            best = match  # the longest word wins, the first of equals
    if best is None:
        return None
    return _from_csat(WORDS[best.group()], scale), best.span(), "word"


def _comment(text: str, start: int, end: int) -> str:
    """What the owner said besides the score; nothing when that was only more rating."""
    rest = f"{text[:start]} {text[end:]}"
    if not _FILLER.sub("", _WORD.sub(" ", rest.lower())):
        return ""
    return _EDGE.sub("", rest.strip())


def _value(match: re.Match[str]) -> int:
    if match["n"] is not None:
        return _round(float(match["n"]))
    numeral = match["c"]
    if "十" not in numeral:
        return _CN_DIGITS[numeral]
    tens, _, units = numeral.partition("十")
    return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0)


def _round(value: float) -> int:
    return int(value + 0.5)  # 4.5 -> 5: an owner between two scores leans to the kinder one


def _from_csat(value: int, scale: str) -> int:
    return CSAT_TO_NPS.get(value, value) if scale == "nps" else value


def _adverb_follows(text: str, at: int) -> bool:
    """After 十分, a Chinese word other than a particle makes it an adverb: 十分满意, 十分不满."""
    return at < len(text) and "\u4e00" <= text[at] <= "\u9fff" and text[at] not in "吧啊呀哦呢嘛了的"


# ------------------------------------------------------------------------------------------
# the conversation


def is_open(ctx: Context) -> bool:
    """Tells whether the dealer's last outreach to this owner is a survey still waiting for a score."""
    return _open_survey(ctx) is not None


def answer(state: State, parse: Parse, ctx: Context, *, strict: bool = False) -> Turn | None:
    """Reads a message sent while a survey is open: a score records it (and closes the survey), a
    comment without one is asked for the score; None routes the message as usual.

    `strict`: another flow is running, so only an unmistakable score ("4分", "五星") answers the
    survey; a bare number belongs to the question that flow asked.
    """
    survey = _open_survey(ctx)
    if survey is None:
        return None
    survey_id, scale = survey
    reading = read_score(parse.text, scale)
    if reading is not None and not _answers(reading, parse, ctx, strict=strict):
        reading = None
    if reading is None:
        return None if strict else _unscored(state, parse, ctx, scale)
    if not in_range(reading.score, scale):
        if strict:
            return None
        return Turn(replies=(Reply(_t(ctx, f"out_of_range.{scale}")),), state=state.with_(misses=0))
    comment = reading.comment or str(state.slots.get(COMMENT) or "")
    return _scored(survey_id, scale, reading.score, comment, ctx, ask=True)


def reason(state: State, parse: Parse, ctx: Context) -> Turn | None:
    """Reads the answer to "why?" after a score; None when it is about something else, or late."""
    if ctx.location is not None or (_understood(parse, ctx) and parse.name in ELSEWHERE | {"greet"}):
        return None
    slots = state.slots
    asked_at = datetime.fromisoformat(str(slots.get("asked_at") or ctx.now.isoformat()))
    if ctx.now - asked_at > timedelta(hours=REASON_HOURS):
        return None  # days later, "在吗" is no reason for last week's score
    survey_id, scale, score = int(slots["survey_id"]), str(slots["scale"]), int(slots["score"])
    ticket = str(slots.get("ticket") or "")
    reading = read_score(parse.text, scale)
    if reading is not None and reading.how in ("marked", "number") and in_range(reading.score, scale):
        # "其实给3分吧": a corrected score is a new answer (the latest counts)
        return _scored(survey_id, scale, reading.score, reading.comment, ctx, ticket=ticket, ask=False)
    comment = parse.text.strip()
    if not comment or _no_comment(parse, ctx):
        return Turn(replies=(Reply(_t(ctx, "no_comment")),), state=State())
    effects: list[Effect] = [RecordSurveyResponse(survey_id, score, comment)]
    if ticket:
        effects.append(UpdateTicket(ticket, {"comment": comment}))
    reply = _t(ctx, "comment_thanks_low" if ticket else "comment_thanks")
    return Turn(replies=(Reply(reply),), state=State(), effects=tuple(effects))


def _open_survey(ctx: Context) -> tuple[int, str] | None:
    outreach = ctx.outreach or {}
    if outreach.get("kind") != "survey":
        return None
    try:
        survey_id = int(outreach["survey_id"])
    except (KeyError, TypeError, ValueError):
        return None
    scale = outreach.get("scale")
    return survey_id, scale if scale in SCALES else ctx.config.survey_kind


def _answers(reading: Reading, parse: Parse, ctx: Context, *, strict: bool) -> bool:
    """Tells whether a reading answers the survey, given what else the message seems to be."""
    if strict:
        return reading.how == "marked"
    if reading.how in ("marked", "number"):
        return True
    if parse.name not in RATING_INTENTS and (parse.confidence >= ctx.threshold or parse.name in ELSEWHERE):
        return False
    return not (parse.name == "complaint" and _COMPLAINS.search(parse.text))


def _unscored(state: State, parse: Parse, ctx: Context, scale: str) -> Turn | None:
    """A message without a score while the survey is open."""
    understood = _understood(parse, ctx)
    if (understood and parse.name == "deny") or _DECLINE.match(fold_width(parse.text)):
        return Turn(replies=(Reply(_t(ctx, "declined")),), state=State(), keeps_outreach=False)
    if COMMENT in state.slots:
        return None  # asked for the score once already: do not nag, route it as usual
    if understood and parse.name != "survey_feedback":
        return None
    # feedback without a score ("师傅很专业"): keep it for the score, and ask for that
    slots = state.slots | {COMMENT: parse.text.strip()}
    return Turn(replies=(Reply(_t(ctx, f"ask_score.{scale}")),), state=state.with_(slots=slots, misses=0))


def _scored(survey_id: int, scale: str, score: int, comment: str, ctx: Context, *, ask: bool, ticket: str = "") -> Turn:
    """Records the score; a low one opens a service ticket and alerts staff, once per survey."""
    effects: list[Effect] = []
    new_ticket = ""
    if score <= LOW[scale] and not ticket:
        new_ticket = ticket = f"C{ctx.message_id:06d}"
        effects += _low_score_ticket(survey_id, scale, score, comment, ticket, ctx)
    effects.append(RecordSurveyResponse(survey_id, score, comment, ticket=new_ticket))
    asks = ask and not comment and score < TOP[scale]
    if score <= LOW[scale]:
        lines = [_t(ctx, "sorry_low", score=score)] + ([_t(ctx, "ask_why")] if asks else [])
    elif score >= TOP[scale]:
        lines = [_t(ctx, "thanks_top", score=score)]
    else:
        lines = [_t(ctx, "thanks", score=score)] + ([_t(ctx, "ask_better")] if asks else [_t(ctx, "comment_thanks")] if comment else [])
    slots = {"survey_id": survey_id, "scale": scale, "score": score, "ticket": ticket, "asked_at": ctx.now.isoformat()}
    state = State(flow=REASON, slots=slots) if asks else State()
    if new_ticket and complaint.is_safety_related(comment):
        # brakes, steering, smoke: safety advice first, and a person takes over now, as for any
        # safety complaint (flows/complaint.py); the alert has already gone to the person on duty
        hotline = ctx.config.rescue_hotline or ctx.dealer_phone
        lead = (Reply("\n".join(lines)), Reply(templates.text("complaint.safety_first", ctx.lang, hotline=hotline)))
        turn = hand_off(ctx, reason="complaint", urgent=True, lead=lead)
        return replace(turn, effects=tuple(effects) + turn.effects, keeps_outreach=False)
    return Turn(replies=(Reply("\n".join(lines)),), state=state, effects=tuple(effects), keeps_outreach=False)


def _low_score_ticket(survey_id: int, scale: str, score: int, comment: str, reference: str, ctx: Context) -> list[Effect]:
    """A low score is a complaint not yet made (domain.md): a service ticket, staff alerted."""
    top = SCALES[scale][1]
    urgent = complaint.is_safety_related(comment)
    said = comment or templates.text("survey.no_comment_label", STAFF_LANG)
    details: dict[str, Any] = {"source": "survey", "survey_id": survey_id, "score": score, "scale": scale, "comment": comment}
    name = ctx.customer_name or templates.text("survey.customer", STAFF_LANG)
    return [
        OpenTicket(
            reference=reference,
            kind="complaint",
            category="service",
            urgent=urgent,
            summary=templates.text("survey.ticket_summary", STAFF_LANG, score=score, top=top, comment=said),
            sla_minutes=ctx.config.sla_minutes.get("urgent" if urgent else "complaint", 240),
            details=details,
        ),
        AlertStaff(
            reason="survey",
            text=templates.text("survey.staff_alert", STAFF_LANG, name=name, score=score, top=top, reference=reference, comment=said),
            urgent=urgent,
            reference=reference,
        ),
    ]


_DECLINE = re.compile(r"^\s*(不用了?|不想评|不评了?|不打分|不想打分|没空|算了|不需要|no|no thanks|skip)\W*$", re.IGNORECASE)
_NOTHING = re.compile(r"^\s*(没有|没有了|没了|没什么|没啥|没事|就这样|不用了?|算了|不说了|no|nothing|none|nope|that'?s all)\W*$", re.IGNORECASE)


def _no_comment(parse: Parse, ctx: Context) -> bool:
    if _NOTHING.match(fold_width(parse.text)):
        return True
    return _understood(parse, ctx) and parse.name in ("deny", "thank", "goodbye", "affirm", "greet")


def _understood(parse: Parse, ctx: Context) -> bool:
    return parse.name != OUT_OF_SCOPE and parse.confidence >= ctx.threshold


def _t(ctx: Context, key: str, **params: Any) -> str:
    return templates.text(f"survey.{key}", ctx.lang, **params)
