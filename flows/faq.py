"""Questions (咨询): answers from the dealer's FAQ; an unknown question offers a person."""
from __future__ import annotations

from bot.messages import Reply
from flows import templates
from flows.fallback import OFFER_HUMAN
from flows.turn import Context, State, Turn
from nlu import Parse


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Answers from the FAQ by the parse's topic, or offers a person."""
    topic = (parse.response or "").removeprefix("ask_question/")
    answer = ctx.config.faq_answer(topic, ctx.lang) if topic else None
    if answer:
        return Turn(replies=(Reply(answer),), state=state.with_(misses=0))
    return Turn(
        replies=(Reply(templates.text("faq.unknown", ctx.lang), buttons=templates.labels("fallback.offer_human_buttons", ctx.lang)),),
        state=State(flow=OFFER_HUMAN),
    )
