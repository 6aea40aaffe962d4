"""First answers for bookings, complaints and roadside help: reassure, then hand to a person.

Every complaint and roadside case reaches a human (domain.md); until the booking flow books
slots itself, a service advisor takes the booking over as well.
"""
from __future__ import annotations

from bot.messages import Reply
from flows import templates
from flows.handoff import hand_off
from flows.turn import Context, State, Turn
from nlu import Parse


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Reassures the owner and hands the case to the right people, roadside first."""
    if parse.name == "roadside_help":
        lead = Reply(templates.text("interim.roadside", ctx.lang, hotline=ctx.config.rescue_hotline or ctx.dealer_phone))
        return hand_off(ctx, reason="roadside", urgent=True, lead=(lead,))
    if parse.name == "complaint":
        return hand_off(ctx, reason="complaint", lead=(Reply(templates.text("interim.complaint", ctx.lang)),))
    reason, key = INTERIM.get(parse.name, ("booking", "interim.booking"))
    return hand_off(ctx, reason=reason, lead=(Reply(templates.text(key, ctx.lang)),))


# intents a person handles until their own flow exists: (hand-off reason, what the owner reads)
INTERIM = {
    "reschedule": ("booking", "interim.booking_change"),
    "cancel_booking": ("booking", "interim.booking_change"),
    "booking_status": ("booking", "interim.booking_change"),
    "survey_feedback": ("survey", "interim.survey"),
}
