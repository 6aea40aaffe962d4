"""Questions (咨询): live answers where the bot knows them, the dealer's FAQ otherwise.

Opening hours start with whether the shop is open right now; the maintenance question starts
with this owner's own car; an unknown question offers a person.
"""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.messages import Reply
from flows import templates
from flows.fallback import OFFER_HUMAN
from flows.turn import Context, State, Turn, VehicleInfo
from nlu import Parse

# when the dealer's configuration does not say (extra.service_interval_months / _km)
DEFAULT_INTERVAL_MONTHS = 6
DEFAULT_INTERVAL_KM = 10_000


def respond(state: State, parse: Parse, ctx: Context) -> Turn:
    """Answers by the parse's topic, live facts first; offers a person when nothing fits."""
    topic = (parse.response or "").removeprefix("ask_question/")
    answer = ctx.config.faq_answer(topic, ctx.lang) if topic else None
    live = _live_answer(topic, ctx)
    if answer or live:
        text = "\n".join(part for part in (live, answer) if part)
        return Turn(replies=(Reply(text),), state=state.with_(misses=0))
    return Turn(
        replies=(Reply(templates.text("faq.unknown", ctx.lang), buttons=templates.labels("fallback.offer_human_buttons", ctx.lang)),),
        state=State(flow=OFFER_HUMAN),
    )


def _live_answer(topic: str, ctx: Context) -> str | None:
    if topic == "hours":
        return open_now(ctx)
    if topic == "maintenance_interval" and ctx.vehicles:
        return "\n".join(filter(None, (next_service(vehicle, ctx) for vehicle in ctx.vehicles))) or None
    return None


def open_now(ctx: Context) -> str:
    """"Open now until 18:00", or "closed now, next open Tuesday 08:30"."""
    zone = ZoneInfo(ctx.timezone)
    local = ctx.now.astimezone(zone)
    if ctx.config.shop_open(ctx.now, ctx.timezone):
        closes = ctx.config.hours[local.weekday()].close
        return templates.text("faq.live.open_now", ctx.lang, close=closes.strftime("%H:%M"))
    opening = ctx.config.next_opening(ctx.now, ctx.timezone)
    if opening is None:
        return templates.text("faq.live.closed_now", ctx.lang, when=templates.text("faq.live.soon", ctx.lang))
    return templates.text("faq.live.closed_now", ctx.lang, when=_when(opening, local, ctx.lang))


def next_service(vehicle: VehicleInfo, ctx: Context) -> str | None:
    """When this car is next due, from its last service: by date or by mileage, whichever first."""
    if vehicle.last_service_date is None:
        return None
    months = int(ctx.config.extra.get("service_interval_months", DEFAULT_INTERVAL_MONTHS))
    kilometres = int(ctx.config.extra.get("service_interval_km", DEFAULT_INTERVAL_KM))
    due = _add_months(vehicle.last_service_date, months)
    today = ctx.now.astimezone(ZoneInfo(ctx.timezone)).date()
    key = "faq.live.service_overdue" if due < today else "faq.live.service_due"
    mileage = (vehicle.last_service_mileage or 0) + kilometres if vehicle.last_service_mileage is not None else None
    return templates.text(
        key,
        ctx.lang,
        plate=vehicle.plate,
        last=vehicle.last_service_date.isoformat(),
        due=due.isoformat(),
        km=f"{mileage:,}" if mileage is not None else "—",
    )


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover


def _when(moment: datetime, local_now: datetime, lang: str) -> str:
    days = (moment.date() - local_now.date()).days
    clock = moment.strftime("%H:%M")
    if days == 0:
        return templates.text("faq.live.today", lang, time=clock)
    if days == 1:
        return templates.text("faq.live.tomorrow", lang, time=clock)
    weekday = templates.labels("faq.live.weekdays", lang)[moment.weekday()]
    return templates.text("faq.live.on_day", lang, month=moment.month, day=moment.day, weekday=weekday, time=clock)



