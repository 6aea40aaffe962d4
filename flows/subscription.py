"""Opting out of (and back into) reminders and care messages, from what the owner wrote.

"别再给我发这些了" on WeChat or SMS turns that channel's messages off at once, and the reply
says how to turn them back on. The carriers' exact keywords (退订, STOP) are answered by the SMS
channel itself before any NLU (integrations/twilio/keywords.py); this is the same wish in the
owner's own words, on any channel.

Reading one wish as its opposite is the costly mistake here ("我不想再收到提醒" taken as opt-in
would answer "已恢复提醒"). So a parse that is not clearly sure, or an opt-in that says 不想 /
不要 / 别, changes nothing and asks for the exact word instead.
"""
from __future__ import annotations

import re

from bot.messages import Reply
from flows import templates
from flows.turn import Context, SetOptOut, State, Turn
from nlu import Parse

SURE = 0.75
NEGATED = re.compile(r"不想|不要|不用|别|不再|停止|stop|don'?t|no more", re.IGNORECASE)


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    opting_out = parse.name == "opt_out"
    if parse.confidence < SURE or (not opting_out and NEGATED.search(parse.text)):
        return Turn((Reply(templates.text("subscription.which", ctx.lang)),), State())
    key = "subscription.opted_out" if opting_out else "subscription.opted_in"
    return Turn((Reply(templates.text(key, ctx.lang)),), State(), (SetOptOut(opted_out=opting_out),))
