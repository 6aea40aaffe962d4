"""Greetings, goodbyes, thanks and a stray yes or no: answer politely, keep the current flow."""
from __future__ import annotations

from bot.messages import Reply
from flows import templates
from flows.turn import Context, State, Turn
from nlu import Parse


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Answers small talk without leaving the current flow."""
    lang = ctx.lang
    if parse.name == "greet":
        key = "greet.known" if ctx.customer_name else "greet.unknown"
        reply = templates.text(key, lang, name=ctx.customer_name, dealer=ctx.dealer_name)
    elif parse.name == "goodbye":
        return Turn(replies=(Reply(templates.text("goodbye", lang)),), state=State())
    elif parse.name == "thank":
        reply = templates.text("thank", lang)
    else:  # affirm or deny with nothing asked: acknowledge and offer help
        reply = templates.text("ack", lang)
    return Turn(replies=(Reply(reply),), state=state.with_(misses=0))
