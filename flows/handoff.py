"""Hand-off to staff: on request, after repeated misunderstanding, for complaints and roadside."""
from __future__ import annotations

from bot.messages import Reply
from flows import templates
from flows.turn import Context, Handoff, State, Turn


def hand_off(ctx: Context, *, reason: str, urgent: bool = False, lead: tuple[Reply, ...] = ()) -> Turn:
    """Hands the conversation to staff and tells the owner when a person will answer."""
    return Turn(replies=lead + (Reply(when_staff_answers(ctx)),), state=State(), effects=(Handoff(reason, urgent),))


def when_staff_answers(ctx: Context) -> str:
    """Says a person answers now, or when staff are next at work."""
    if ctx.config.staff_available(ctx.now, ctx.timezone):
        return templates.text("handoff.now", ctx.lang)
    nxt = ctx.config.next_staff_time(ctx.now, ctx.timezone)
    if nxt is None:
        return templates.text("handoff.no_staff_time", ctx.lang)
    fmt = "%m-%d %H:%M" if ctx.lang == "en" else "%m月%d日 %H:%M"
    return templates.text("handoff.later", ctx.lang, when=nxt.strftime(fmt))
