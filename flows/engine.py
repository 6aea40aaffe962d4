"""The dialogue manager: routes each parse to the active flow or a new one by intent."""
from __future__ import annotations

from collections.abc import Callable

from flows import escalation, faq, fallback, smalltalk
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
    "book_service": escalation.respond,
    "complaint": escalation.respond,
    "roadside_help": escalation.respond,
    "reschedule": escalation.respond,
    "cancel_booking": escalation.respond,
    "booking_status": escalation.respond,
    "opt_out": escalation.respond,
    "opt_in": escalation.respond,
    "survey_feedback": escalation.respond,
    "request_human": lambda state, parse, ctx: hand_off(ctx, reason="request"),
}


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Returns the bot's turn for one understood message."""
    if state.flow == fallback.OFFER_HUMAN:
        turn = fallback.answer_offer(state, parse, ctx)
        if turn is not None:
            return turn
        state = State(misses=state.misses)

    picked = fallback.picked_choice(state, parse.text)
    if picked is not None:
        parse = Parse(text=parse.text, intent=IntentScore(picked, 1.0), entities=parse.entities, ranking=parse.ranking)

    understood = parse.name != OUT_OF_SCOPE and parse.confidence >= ctx.threshold
    flow = BY_INTENT.get(parse.name) if understood else None
    if flow is None:
        return fallback.respond(state, parse, ctx)
    return flow(state.with_(misses=0, slots={k: v for k, v in state.slots.items() if k != "choices"}), parse, ctx)
