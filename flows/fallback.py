"""Not understood: clarify with the top two readings first, offer a person the second time."""
from __future__ import annotations

import re

from bot.messages import Reply
from flows import templates
from flows.handoff import hand_off
from flows.turn import Context, State, Turn
from nlu import Parse

OFFER_HUMAN = "offer_human"
# Intents worth offering as "did you mean": small talk is never what a confused owner wanted.
OFFERABLE = ("book_service", "complaint", "roadside_help", "ask_question", "request_human")

_YES = re.compile(r"^\s*(1|好|好的|好啊|行|可以|是|是的|要|需要|嗯|嗯嗯|对|ok|okay|yes|yeah|sure|y)\W*$", re.IGNORECASE)
_NO = re.compile(r"^\s*(2|不|不用|不用了|不要|不需要|算了|no|nope|n|no thanks)\W*$", re.IGNORECASE)


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Asks the owner to clarify, and offers a person once understanding has failed twice."""
    misses = state.misses + 1
    if misses >= 2:
        return Turn(
            replies=(
                Reply(
                    templates.text("fallback.offer_human", ctx.lang),
                    buttons=templates.labels("fallback.offer_human_buttons", ctx.lang),
                ),
            ),
            state=State(flow=OFFER_HUMAN, misses=misses),
        )
    candidates = [r.name for r in parse.ranking if r.name in OFFERABLE][:2]
    if len(candidates) == 2:
        first, second = (templates.text(f"intent_label.{name}", ctx.lang) for name in candidates)
        reply = Reply(templates.text("fallback.clarify_two", ctx.lang, first=first, second=second), buttons=(first, second))
        slots = {"choices": candidates}
    else:
        reply = Reply(templates.text("fallback.clarify", ctx.lang))
        slots = {}
    return Turn(replies=(reply,), state=state.with_(misses=misses, slots=state.slots | slots))


def answer_offer(state: State, parse: Parse, ctx: Context) -> Turn | None:
    """Handles the owner's answer to "shall I get you a person?"; None if it was something else."""
    if _YES.match(parse.text) or parse.name == "request_human":
        return hand_off(ctx, reason="misunderstood")
    if _NO.match(parse.text):
        return Turn(replies=(Reply(templates.text("fallback.declined", ctx.lang)),), state=State())
    return None


def picked_choice(state: State, text: str) -> str | None:
    """Returns the intent the owner picked from a "did you mean" question (by number or label)."""
    choices = state.slots.get("choices") or []
    stripped = text.strip()
    if stripped in ("1", "2") and len(choices) >= int(stripped):
        return choices[int(stripped) - 1]
    return None
