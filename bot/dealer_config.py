"""A dealer's working configuration (hours, services, bays, SLAs, FAQ), kept in Dealer.config."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field


class DayHours(BaseModel):
    open: time
    close: time


class Service(BaseModel):
    code: str  # minor_service, major_service, repair, bodywork, alignment, inspection...
    name_zh: str
    name_en: str
    minutes: int = Field(gt=0)
    price_from: int | None = None  # yuan


class FaqEntry(BaseModel):
    topic: str  # hours, address, phone, prices, ... (matches ask_question/<topic>)
    answer_zh: str
    answer_en: str


class ReminderRule(BaseModel):
    """One reminder rule as a dealer set it (scheduler/rules.py has every rule and its defaults)."""

    enabled: bool = True
    # days before the due day the reminder goes; None keeps the rule's default
    lead_days: int | None = Field(default=None, ge=0, le=365)
    # a rule that reminds several times (insurance: 30, 7 and 1 days before); None: the default
    offsets_days: list[int] | None = None
    send_hour: int = Field(default=10, ge=8, le=20)  # local time, always inside the daytime
    # the dealer's own wording, {name} {plate} {date} {dealer} {service}...; empty: ours
    template_zh: str = ""
    template_en: str = ""


class CannedReply(BaseModel):
    """A reply staff send often, in the owner's language (the console offers them beside the reply box)."""

    title: str
    text_zh: str
    text_en: str = ""


DEFAULT_CANNED = [
    CannedReply(title="问候", text_zh="您好，我是{dealer}的客服，很高兴为您服务。请问有什么可以帮您？",
                text_en="Hello, this is {dealer} customer care. How can I help you?"),
    CannedReply(title="稍候", text_zh="好的，我马上为您查询，请稍候。", text_en="Sure, let me check that for you. One moment please."),
    CannedReply(title="回电", text_zh="我们的工作人员将尽快致电您，请保持电话畅通。",
                text_en="A member of our staff will call you shortly; please keep your phone at hand."),
    CannedReply(title="致歉", text_zh="非常抱歉给您带来不便，我们会认真处理并尽快给您答复。",
                text_en="We are very sorry for the trouble. We will look into it and get back to you soon."),
    CannedReply(title="结束", text_zh="感谢您的耐心，祝您用车愉快！如有需要随时联系我们。",
                text_en="Thank you for your patience. Drive safely, and contact us any time."),
]


class DealerConfig(BaseModel):
    # weekday 0 = Monday; a missing weekday is closed
    hours: dict[int, DayHours] = Field(default_factory=dict)
    staff_hours: dict[int, DayHours] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    bays: int = Field(default=4, ge=1)
    slot_minutes: int = Field(default=30, ge=5)
    pickup_offered: bool = False
    pickup_radius_km: float = 30.0
    rescue_hotline: str = ""
    rescue_radius_km: float = 50.0
    sla_minutes: dict[str, int] = Field(default_factory=lambda: {"urgent": 30, "complaint": 240, "handoff": 60})
    quiet_hours: tuple[time, time] = (time(21, 0), time(8, 0))
    # SMS: the 【签名】 prefix carriers require (default 【dealer name】), the opt-out line care and
    # marketing texts end with (default 回T退订 / Reply STOP to opt out, by the dealer's language),
    # and the most parts one SMS may take, so a runaway template cannot send a 10-part text
    sms_signature: str = ""
    sms_opt_out_line: str = ""
    sms_max_segments: int = Field(default=3, ge=1, le=10)
    faq: list[FaqEntry] = Field(default_factory=list)
    canned_replies: list[CannedReply] = Field(default_factory=lambda: list(DEFAULT_CANNED))
    # keeping in touch (scheduler/): rules by code, intervals, the weekly cap, surveys, tiers
    reminders: dict[str, ReminderRule] = Field(default_factory=dict)
    maintenance_interval_days: int = Field(default=180, ge=30)
    maintenance_interval_km: int = Field(default=5000, ge=1000)
    first_service_days: int = Field(default=90, ge=7)
    first_service_km: int = Field(default=3000, ge=500)
    care_cap_per_week: int = Field(default=2, ge=0)  # appointment reminders are not counted
    survey_kind: Literal["csat", "nps"] = "csat"
    survey_delay_hours: int = Field(default=24, ge=1, le=24 * 14)
    # contact every so many days by tier (domain.md: A 1-3, B 3-6, C 6-12 months)
    tier_cadence_days: dict[str, int] = Field(default_factory=lambda: {"A": 60, "B": 120, "C": 240})
    # holiday wishes: spring_festival, lantern, dragon_boat, mid_autumn (lunar), new_year,
    # labour_day, national_day (solar); dealers add their own as {"name": "MM-DD"} in extra
    holidays_greeted: list[str] = Field(default_factory=lambda: ["spring_festival", "mid_autumn", "national_day"])
    extra: dict[str, Any] = Field(default_factory=dict)

    def faq_answer(self, topic: str, lang: str) -> str | None:
        entry = next((f for f in self.faq if f.topic == topic), None)
        if entry is None:
            return None
        return entry.answer_en if lang == "en" else entry.answer_zh

    def shop_open(self, moment: datetime, tz: str) -> bool:
        """Tells whether the workshop is open at that moment, in the dealer's timezone."""
        local = moment.astimezone(ZoneInfo(tz))
        hours = self.hours.get(local.weekday())
        return bool(hours and local.date() not in self.holidays and hours.open <= local.time() < hours.close)

    def next_opening(self, moment: datetime, tz: str) -> datetime | None:
        """Returns when the workshop next opens after `moment` (local time), within two weeks."""
        zone = ZoneInfo(tz)
        local = moment.astimezone(zone)
        for offset in range(15):
            day = local.date() + timedelta(days=offset)
            hours = self.hours.get(day.weekday())
            if hours and day not in self.holidays and (start := datetime.combine(day, hours.open, zone)) > local:
                return start
        return None

    def staff_available(self, moment: datetime, tz: str) -> bool:
        """Tells whether a person is at work at that moment, in the dealer's timezone."""
        local = moment.astimezone(ZoneInfo(tz))
        if local.date() in self.holidays:
            return False
        hours = self.staff_hours.get(local.weekday()) or self.hours.get(local.weekday())
        return bool(hours and hours.open <= local.time() < hours.close)

    def next_staff_time(self, moment: datetime, tz: str) -> datetime | None:
        """Returns when staff are next at work (local time), or None if never within two weeks."""
        zone = ZoneInfo(tz)
        local = moment.astimezone(zone)
        for offset in range(15):
            day = local.date() + timedelta(days=offset)
            hours = self.staff_hours.get(day.weekday()) or self.hours.get(day.weekday())
            if not hours or day in self.holidays:
                continue
            start = datetime.combine(day, hours.open, zone)
            end = datetime.combine(day, hours.close, zone)
            if local < end:
                return max(start, local)
        return None
