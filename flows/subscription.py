"""Opting out of (and back into) reminders and care messages, from what the owner wrote.

"别再给我发这些了" on WeChat or SMS turns that channel's messages off at once, and the reply
says how to turn them back on. The carriers' exact keywords (退订, STOP) are answered by the SMS
channel itself before any NLU (integrations/twilio/keywords.py); this is the same wish in the
owner's own words, on any channel.
"""
from __future__ import annotations

from bot.messages import Reply
from flows import templates
from flows.turn import Context, SetOptOut, State, Turn
from nlu import Parse


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    opting_out = parse.name == "opt_out"
    key = "subscription.opted_out" if opting_out else "subscription.opted_in"
    return Turn((Reply(templates.text(key, ctx.lang)),), State(), (SetOptOut(opted_out=opting_out),))
