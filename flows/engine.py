"""The dialogue manager: routes each parse to the active flow or a new one by intent.

Rules, in order:
1. An answer to "shall I get you a person?" is handled first, then the reason asked after a
   survey score.
2. While the dealer's last reminder or survey is open (`Context.outreach`), a message that answers
   it goes to flows/survey.py or flows/outreach.py; anything else is routed by the rules below and
   the outreach stays open. A running complaint or roadside case keeps its messages; a running
   booking gives up only an unmistakable survey score ("4分") and is kept to be resumed.
3. While a flow runs, its messages go to it, except that roadside help, a complaint or a
   request for a person take over at once (the interrupted flow is kept and offered again
   afterwards), a question is answered without leaving the flow, and 取消 / 算了 leaves it.
4. Otherwise the intent picks the flow; a parse below the confidence threshold asks the owner
   to clarify, and a second miss offers a person.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from bot.messages import Reply
from flows import (
    booking,
    complaint,
    fallback,
    faq,
    outreach,
    roadside,
    smalltalk,
    subscription,
    survey,
    templates,
)
from flows.escalation import respond as interim
from flows.handoff import hand_off
from flows.turn import Context, State, Turn
from nlu import Parse
from nlu.parse import OUT_OF_SCOPE, IntentScore

FlowFn = Callable[[State, Parse, Context], Turn]

BY_INTENT: dict[str, FlowFn] = {
    "greet": smalltalk.respond,
    "goodbye": smalltalk.respond,
    "thank": smalltalk.respond,
    "affirm": smalltalk.respond,
    "deny": smalltalk.respond,
    "ask_question": faq.respond,
    "book_service": booking.respond,
    "reschedule": booking.reschedule,
    "cancel_booking": booking.cancel,
    "booking_status": booking.status,
    "complaint": complaint.respond,
    "roadside_help": roadside.respond,
    "opt_out": subscription.respond,
    "opt_in": subscription.respond,
    "survey_feedback": interim,
    "request_human": lambda state, parse, ctx: hand_off(ctx, reason="request"),
}
# the flows that keep a conversation between messages, by the name they store in State.flow
ACTIVE: dict[str, FlowFn] = {
    booking.FLOW: booking.respond,
    complaint.FLOW: complaint.respond,
    complaint.FOLLOWUP: complaint.followup,
    roadside.FLOW: roadside.respond,
}
# what may cut into a running flow: an emergency or a grievance does not wait for a booking to
# finish; a roadside case keeps every message (it hands off urgently itself), and a complaint's
# follow-up takes a new grievance as its own answer
INTERRUPTS: dict[str, frozenset[str]] = {
    booking.FLOW: frozenset({"roadside_help", "complaint", "request_human"}),
    complaint.FLOW: frozenset({"roadside_help"}),
    complaint.FOLLOWUP: frozenset({"roadside_help"}),
    roadside.FLOW: frozenset(),
}
QUIT = re.compile(r"^\s*(取消|算了|不约了|不办了|不用了|退出|先不弄了|cancel|never ?mind|forget it)\W*$", re.IGNORECASE)
RESUME = re.compile(r"^\s*(继续|继续预约|接着约|接着预约|continue|resume)\W*$", re.IGNORECASE)
# questions whose "no" (不用了, 算了, 取消...) is an answer, not a wish to leave: "need pick-up?"
# and "cancel this appointment, sure?"
ANSWERED_BY_NO = frozenset({"pickup", "confirm_cancel"})
PAUSED = "paused"  # state slot: the flow an interruption put aside, {"flow": ..., "slots": {...}}

def needs_calendar(state: State, parse: Parse) -> bool:
    """Tells the pipeline whether this turn may need the workshop calendar and appointments."""
    paused = state.slots.get(PAUSED) or {}
    # an answer to a reminder ("1", 确认) may book or confirm: the state cannot tell whether one
    # is open, so any message that could answer one loads the calendar
    return booking.needs_calendar(state, parse) or paused.get("flow") == booking.FLOW or outreach.may_answer(parse)


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Returns the bot's turn for one understood message."""
    if state.flow == fallback.OFFER_HUMAN:
        turn = fallback.answer_offer(state, parse, ctx)
        if turn is not None:
            return turn
        state = State(misses=state.misses, slots=_kept(state))

    picked = fallback.picked_choice(state, parse.text)
    if picked is not None:
        parse = Parse(text=parse.text, intent=IntentScore(picked, 1.0), entities=parse.entities, ranking=parse.ranking)
    understood = parse.name != OUT_OF_SCOPE and parse.confidence >= ctx.threshold

    if state.flow == survey.REASON:
        # an outreach open now was sent after the question: the message more likely answers it
        turn = None if ctx.outreach else survey.reason(state, parse, ctx)
        if turn is not None:
            return _carry(turn, state.slots.get(PAUSED), ctx.lang)
        state = State(misses=state.misses, slots=_kept(state))
    if picked is None and ctx.outreach:
        turn = _answer_outreach(state, parse, ctx)
        if turn is not None:
            return turn

    if state.flow in ACTIVE:
        return _within_flow(state, parse, ctx, understood)
    if ctx.location is not None:
        # a shared location out of the blue: most likely an owner in trouble on the road
        return _carry(roadside.respond(State(), parse, ctx), state.slots.get(PAUSED), ctx.lang)

    paused = state.slots.get(PAUSED)
    if paused and (RESUME.match(parse.text) or (understood and parse.name == "book_service")):
        return ACTIVE[paused["flow"]](State(flow=paused["flow"], slots=paused["slots"]), parse, ctx)

    flow = BY_INTENT.get(parse.name) if understood else None
    if flow is None:
        return fallback.respond(state, parse, ctx)
    return _carry(flow(State(), parse, ctx), paused, ctx.lang)


def _answer_outreach(state: State, parse: Parse, ctx: Context) -> Turn | None:
    """The turn for a message that answers the open reminder or survey; None when it does not."""
    if ctx.location is not None:
        return None
    running = state.flow in ACTIVE
    if running and state.flow != booking.FLOW:
        return None  # a complaint or a roadside case keeps its messages
    if survey.is_open(ctx):
        turn = survey.answer(state, parse, ctx, strict=running)
    else:
        turn = None if running else outreach.answer(parse, ctx)
    if turn is None:
        return None
    if running:
        # the booking waits while the survey is answered, and is offered again
        paused = {"flow": state.flow, "slots": {k: v for k, v in state.slots.items() if k != PAUSED}}
        return _carry(turn, paused, ctx.lang, offer=True)
    return _carry(turn, state.slots.get(PAUSED), ctx.lang)


def _within_flow(state: State, parse: Parse, ctx: Context, understood: bool) -> Turn:
    if QUIT.match(parse.text) and state.slots.get("step") not in ANSWERED_BY_NO:
        return Turn(replies=(Reply(templates.text("flow.left", ctx.lang)),), state=State(slots=_kept(state)))
    if understood and parse.name in INTERRUPTS[state.flow]:
        paused = state.slots.get(PAUSED)
        if state.flow == booking.FLOW:
            paused = {"flow": state.flow, "slots": {k: v for k, v in state.slots.items() if k != PAUSED}}
        turn = BY_INTENT[parse.name](State(), parse, ctx)
        return _carry(turn, paused, ctx.lang, offer=paused is not None)
    if state.flow == booking.FLOW and understood and parse.name == "ask_question" and parse.response:
        # a question in the middle of a booking is answered; the booking stays where it was
        answer = faq.respond(state, parse, ctx)
        if answer.state.flow != fallback.OFFER_HUMAN:
            return Turn(replies=answer.replies, state=state)
    # the flow may rebuild its slots: a booking waiting behind it must survive that
    return _carry(ACTIVE[state.flow](state, parse, ctx), state.slots.get(PAUSED), ctx.lang)


def _kept(state: State) -> dict:
    """The slots that outlive a flow: only an interrupted flow waiting to be resumed."""
    return {PAUSED: state.slots[PAUSED]} if state.slots.get(PAUSED) else {}


def _carry(turn: Turn, paused: dict | None, lang: str, *, offer: bool = False) -> Turn:
    """Keeps the paused flow in the new state and, when asked, tells the owner it is waiting."""
    if not paused:
        return turn
    slots = dict(turn.state.slots)
    slots.setdefault(PAUSED, paused)
    replies = turn.replies
    if offer:
        replies = replies + (Reply(templates.text("flow.resume_later", lang)),)
    return replace(turn, replies=replies, state=turn.state.with_(slots=slots))

