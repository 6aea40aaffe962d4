"""Complaints (投诉): listen, classify, open a ticket, and always put a person on it.

domain.md: classes are product quality, service and other; safety-related complaints are
urgent; the owner is told the result when staff resolve the ticket. The bot never argues or
solves a complaint itself: it records what happened and hands the conversation to staff.

States:
- `complaint`: we asked what happened; slots {"asked": True, "first": <the opening message>}.
- `complaint_followup`: staff resolved the ticket and we asked whether the problem is solved;
  slots {"reference": "C000123", "asked_again": bool}.
"""
from __future__ import annotations

import re
from dataclasses import replace

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

FLOW = "complaint"
FOLLOWUP = "complaint_followup"
# staff alerts are read by the dealer's staff, whose working language is Chinese
STAFF_LANG = "zh"

# Keyword table for the three classes of domain.md. Chinese words match as substrings; ASCII
# words match at a word start, so "charge" also finds "charged" but "rust" not "trust".
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    # staff and the service itself: waiting, attitude, prices, repairs that did not fix the car,
    # damage or loss while the car was with us, calls nobody answered
    "service": (
        "等了", "等太久", "排队", "太慢", "拖延", "态度", "不理", "不耐烦", "骂", "凶",
        "价格", "收费", "多收", "乱收", "太贵", "很贵", "好贵", "费用", "报价", "发票",
        "没修好", "修不好", "又坏", "返修", "还是", "修了", "修过", "修完", "保养后", "保养完",
        "划伤", "划痕", "刮花", "刮伤", "弄坏", "损坏", "丢了", "丢失", "不见了",
        "没人接", "不接电话", "打不通", "没回复", "不回复",
        "服务", "顾问", "销售", "前台", "师傅", "技师",
        "wait", "hours", "slow", "delay", "rude", "attitude", "ignored",
        "price", "charge", "overcharg", "expensive", "bill", "invoice", "quote",
        "not fixed", "still", "again", "scratch", "damaged", "lost", "missing",
        "nobody answer", "no one answer", "didn't answer", "never answer", "call back",
        "service", "advisor", "staff", "salesman", "sales",
    ),
    # the car itself: noises, leaks, faults, warning lights, parts failing
    "product_quality": (
        "异响", "响声", "噪音", "杂音", "异味", "漏油", "漏水", "渗油", "渗水", "漏风",
        "故障", "报警", "亮灯", "抖", "熄火", "打不着", "启动不了", "失灵", "坏了",
        "刹车", "制动", "气囊", "方向盘", "转向", "冒烟", "着火", "起火", "自燃", "失控",
        "发动机", "变速箱", "电瓶", "空调", "生锈", "掉漆", "质量", "油耗", "缺陷", "召回",
        "noise", "rattle", "squeak", "leak", "fault", "warning light", "check engine", "engine",
        "gearbox", "transmission", "brake", "airbag", "steering", "smoke", "fire", "stall",
        "quality", "rust", "defect", "vibrat", "shake", "battery", "air con", "recall",
    ),
    # suggestions and the rest: parking, the lounge, events
    "other": (
        "建议", "停车", "车位", "环境", "休息区", "洗手间", "厕所", "咖啡", "活动",
        "suggest", "parking", "lounge", "toilet", "coffee", "wifi", "event",
    ),
}
# On a tie the first class here wins: a tie usually means a repair that did not fix the car
# ("修了两次还是漏油"), which domain.md counts as a service complaint.
CATEGORY_ORDER = ("service", "product_quality", "other")

# Safety-related words make a complaint urgent (domain.md).
SAFETY_WORDS = (
    "刹车", "制动", "气囊", "方向盘", "转向", "冒烟", "着火", "起火", "自燃", "失控",
    "brake", "airbag", "steering", "smoke", "fire", "lost control", "loss of control",
)
# An engine cutting out is only a safety matter while the car is moving.
STALL_WORDS = ("熄火", "stall", "cut out", "cuts out", "died")
DRIVING_WORDS = (
    "开着", "开车", "行驶", "高速", "路上", "时速", "跑着", "行车", "过程中",
    "driving", "at speed", "motorway", "highway", "on the road",
)
# "打不着火" (won't start) contains 着火 (on fire) but is no fire; a steering-wheel cover, a turn
# signal or "the advisor should be fired" name a safety word but no danger on the road
NOT_SAFETY = ("打不着火", "点不着火", "方向盘套", "转向灯", "fired", "firing")
# Parts that are bought and fitted: named in a complaint about money ("换刹车片多收了200块") they
# say what the bill was for, not that the car is unsafe. The same part with a symptom
# ("刹车片换完刹车还是软") still has a safety word left once the part name is taken out.
SAFETY_PARTS = (
    "刹车片", "刹车盘", "刹车油", "制动液", "制动片", "制动盘",
    "brake pads", "brake pad", "brake discs", "brake disc", "brake fluid",
)
MONEY_WORDS = (
    "价格", "收费", "多收", "乱收", "太贵", "很贵", "好贵", "费用", "报价", "发票", "块钱",
    "price", "charge", "overcharg", "expensive", "bill", "invoice", "quote",
)
_AMOUNT = re.compile(r"\d+\s*(?:块|元|yuan|rmb)", re.IGNORECASE)

# What owners say to open a complaint without saying what happened ("我要投诉").
GENERIC_PHRASES = (
    "我要投诉", "我想投诉", "我要反映", "我想反映", "我有意见", "投诉一下", "反映一下",
    "提个建议", "我有个建议", "有个建议", "投诉", "反映", "建议", "意见", "贵店",
    "你们的", "你们", "请问", "怎么", "哪里", "在哪", "一下", "店",
    "我", "要", "想", "有", "个", "的", "了", "啊", "呢", "吧", "吗",
)
GENERIC_WORDS = frozenset(
    (
        "i", "i'd", "i'm", "want", "wanna", "to", "would", "like", "make", "file", "lodge", "raise",
        "a", "an", "the", "complaint", "complaints", "complain", "about", "feedback", "suggestion",
        "have", "you", "your", "please", "how", "can", "do", "where", "my", "me", "dealer",
        "dealership", "hi", "hello", "it", "is", "this", "here",
    )
)
# keywords that on their own do not say what happened: whom or what the complaint is about
# ("我要投诉服务顾问" still gets asked), or "again" ("我还是要投诉")
NOT_WHAT_HAPPENED = frozenset(
    ("服务", "顾问", "销售", "前台", "师傅", "技师", "质量", "还是",
     "service", "advisor", "staff", "salesman", "sales", "quality", "still", "again")
)
# an opening message that, without the generic words, still has this many characters or words
# describes what happened even when no keyword matched
MIN_CONTENT = 5

_ASCII_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_CJK = re.compile(r"[\u4e00-\u9fff]")

# Asked what happened, an owner who takes the complaint back ("算了，不投诉了") gets no ticket;
# the engine's quit words catch a bare "算了", these catch the longer ways of saying it.
WITHDRAW_WORDS = (
    "不投诉", "不想投诉", "不反映", "不用投诉", "不提了", "不说了", "没事了", "算了", "不用了",
    "never mind", "nevermind", "forget it", "no complaint", "don't want to complain",
)

# a bare yes or no arrives as the affirm or deny intent; these catch the answers in words
RESOLVED_WORDS = ("已解决", "解决了", "好了", "满意", "可以了", "solved", "resolved", "fixed", "all good")
UNRESOLVED_WORDS = (
    "还没有", "没解决", "没有解决", "未解决", "还没", "不满意", "没好",
    "not yet", "not solved", "not resolved", "not fixed", "still",
)


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Takes a complaint: asks once what happened when needed, then opens the ticket and hands off."""
    text = parse.text.strip()
    if state.flow == FLOW and state.slots.get("asked"):
        first = str(state.slots.get("first") or "")
        if withdraws(text, parse):
            # the engine keeps an interrupted booking (paused) in its own turn wrapper
            return Turn(replies=(Reply(templates.text("complaint.withdrawn", ctx.lang)),), state=State())
        # the answer to "what happened?" is the complaint, whatever it says; an empty message
        # (a picture, a sticker) still must not lose the complaint
        return open_complaint(text or first, ctx, first=first)
    if says_what_happened(text):
        return open_complaint(text, ctx)
    reply = Reply(templates.text("complaint.ask_what", ctx.lang))
    return Turn(replies=(reply,), state=State(flow=FLOW, slots={"asked": True, "first": text}))


def open_complaint(what: str, ctx: Context, first: str = "") -> Turn:
    """Opens the ticket, alerts staff when it is urgent, and hands the owner to a person, in one turn."""
    category = classify(what)
    urgent = is_safety_related(what)
    minutes = ctx.config.sla_minutes["urgent" if urgent else "complaint"]
    reference = f"C{ctx.message_id:06d}"
    details: dict[str, str] = {"text": what}
    if first and first != what:
        details["first_message"] = first
    effects: list[Effect] = [
        OpenTicket(
            reference=reference,
            kind="complaint",
            category=category,
            urgent=urgent,
            summary=what,
            sla_minutes=minutes,
            details=details,
        )
    ]
    if urgent:
        alert = templates.text("complaint.staff_alert", STAFF_LANG, reference=reference, summary=what)
        effects.append(AlertStaff(reason="complaint", text=alert, urgent=True, reference=reference))
        lead = (
            Reply(templates.text("complaint.recorded_urgent", ctx.lang, reference=reference, minutes=minutes)),
            Reply(templates.text("complaint.safety_first", ctx.lang, hotline=_hotline(ctx))),
        )
    else:
        lead = (Reply(templates.text("complaint.recorded", ctx.lang, reference=reference)),)
    turn = _to_staff(ctx, urgent=urgent, lead=lead)
    return replace(turn, effects=tuple(effects) + turn.effects)


def result_message(result: str, reference: str, lang: str) -> Reply:
    """What the owner reads when staff resolve the ticket: the result and "is it solved?"."""
    return Reply(
        templates.text("complaint.result", lang, reference=reference, result=result),
        buttons=templates.labels("complaint.resolved_buttons", lang),
    )


def followup_state(reference: str) -> State:
    """The state to store with `result_message`, so the owner's answer reaches `followup`."""
    return State(flow=FOLLOWUP, slots={"reference": reference})


def followup(state: State, parse: Parse, ctx: Context) -> Turn:
    """Handles the answer to "问题解决了吗？": thanks, or reopens the ticket and hands off again."""
    reference = str(state.slots.get("reference") or "")
    answer = resolved_answer(parse, ctx.lang)
    if answer is True:
        return Turn(replies=(Reply(templates.text("complaint.thanks", ctx.lang)),), state=State())
    if answer is None and state.slots.get("asked_again"):
        # asked twice and still no answer: let it rest rather than nag; staff can follow up
        return Turn(replies=(Reply(templates.text("complaint.noted", ctx.lang)),), state=State())
    if answer is None:
        reply = Reply(
            templates.text("complaint.ask_resolved_again", ctx.lang),
            buttons=templates.labels("complaint.resolved_buttons", ctx.lang),
        )
        return Turn(replies=(reply,), state=state.with_(slots=state.slots | {"asked_again": True}))
    urgent = is_safety_related(parse.text)
    update = UpdateTicket(reference, {"reopened": True, "text": parse.text.strip()})
    effects: list[Effect] = [update]
    if urgent:
        alert = templates.text("complaint.staff_alert", STAFF_LANG, reference=reference, summary=parse.text.strip())
        effects.append(AlertStaff(reason="complaint", text=alert, urgent=True, reference=reference))
    lead = (Reply(templates.text("complaint.reopened", ctx.lang, reference=reference)),)
    if urgent:
        lead += (Reply(templates.text("complaint.safety_first", ctx.lang, hotline=_hotline(ctx))),)
    turn = _to_staff(ctx, urgent=urgent, lead=lead)
    return replace(turn, effects=tuple(effects) + turn.effects)


def resolved_answer(parse: Parse, lang: str) -> bool | None:
    """True: solved; False: not solved (or a new complaint); None: no answer to the question."""
    text = parse.text.strip()
    yes, no = templates.labels("complaint.resolved_buttons", lang)
    # buttons degrade to numbered lines on SMS: "1" is the first button
    if text in (yes, "1"):
        return True
    if text in (no, "2"):
        return False
    # "没解决" contains "解决", so the "not solved" words are checked first
    if parse.name in ("deny", "complaint") or _mentions(text, UNRESOLVED_WORDS):
        return False
    if parse.name in ("affirm", "thank") or _mentions(text, RESOLVED_WORDS):
        return True
    if any(_matches(text, words) for words in CATEGORY_WORDS.values()) or is_safety_related(text):
        return False
    # a long answer that is no "yes" most likely describes what is still wrong
    if _content_units(text) >= MIN_CONTENT:
        return False
    return None


def classify(text: str) -> str:
    """Returns product_quality, service or other: the class with the most keyword hits."""
    hits = {category: len(_matches(text, CATEGORY_WORDS[category])) for category in CATEGORY_ORDER}
    best = max(CATEGORY_ORDER, key=lambda category: hits[category])  # max keeps the first on ties
    return best if hits[best] else "other"


def is_safety_related(text: str) -> bool:
    """Tells whether the complaint is about brakes, airbags, steering, smoke, fire, loss of
    control, or an engine cutting out while driving: those are urgent."""
    text = text.lower()
    for harmless in NOT_SAFETY:
        text = text.replace(harmless, " ")
    if _mentions(text, MONEY_WORDS) or _AMOUNT.search(text):
        for part in SAFETY_PARTS:
            text = text.replace(part, " ")
    if _mentions(text, SAFETY_WORDS):
        return True
    return _mentions(text, STALL_WORDS) and _mentions(text, DRIVING_WORDS)


def withdraws(text: str, parse: Parse) -> bool:
    """Tells whether the answer to "what happened?" takes the complaint back instead: a quit word
    or a bare no, with nothing left that says what happened."""
    if not (_mentions(text, WITHDRAW_WORDS) or parse.name == "deny"):
        return False
    rest = text.lower()
    for word in WITHDRAW_WORDS:
        rest = rest.replace(word, " ")
    return not says_what_happened(rest)


def says_what_happened(text: str) -> bool:
    """Tells whether an opening message is more than "我要投诉": a keyword, or enough words."""
    rest = text
    for phrase in GENERIC_PHRASES:
        rest = rest.replace(phrase, " ")
    words = [w for w in _ASCII_WORD.findall(rest.lower()) if w not in GENERIC_WORDS]
    rest_en = " ".join(words)
    for group in CATEGORY_WORDS.values():
        if set(_matches(rest, group) + _matches(rest_en, group)) - NOT_WHAT_HAPPENED:
            return True
    return len(_CJK.findall(rest)) + len(words) >= MIN_CONTENT


def _to_staff(ctx: Context, *, urgent: bool, lead: tuple[Reply, ...]) -> Turn:
    """Hands off; an urgent case out of staff hours drops the "we reply at 09:00" line, because the
    alert has reached the person on duty, who calls within the SLA already promised in `lead`."""
    turn = hand_off(ctx, reason="complaint", urgent=urgent, lead=lead)
    if urgent and not ctx.config.staff_available(ctx.now, ctx.timezone):
        return replace(turn, replies=lead)
    return turn


def _hotline(ctx: Context) -> str:
    return ctx.config.rescue_hotline or ctx.dealer_phone


def _matches(text: str, words: tuple[str, ...]) -> list[str]:
    """Returns the keywords found in the text (Chinese as substrings, English at word starts)."""
    lowered = text.lower()
    found = []
    for word in words:
        if word.isascii():
            if re.search(r"\b" + re.escape(word), lowered):
                found.append(word)
        elif word in text:
            found.append(word)
    return found


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    return bool(_matches(text, words))


def _content_units(text: str) -> int:
    """Chinese characters plus English words: a rough length that treats both languages alike."""
    return len(_CJK.findall(text)) + len(_ASCII_WORD.findall(text))
