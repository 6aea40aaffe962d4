"""What a flow takes and gives: the conversation state, the context, the Turn and its effects."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any

from bot.dealer_config import DealerConfig
from bot.messages import Reply


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    id: int
    plate: str
    model: str = ""
    last_service_date: date | None = None
    last_service_mileage: int | None = None


@dataclass(frozen=True, slots=True)
class Booked:
    """A slice of the workshop's calendar that is taken: one appointment in one bay."""

    starts_at: datetime  # aware
    ends_at: datetime
    appointment_id: int | None = None  # lets a reschedule ignore the appointment being moved


@dataclass(frozen=True, slots=True)
class AppointmentInfo:
    """One of the owner's own upcoming appointments."""

    id: int
    reference: str
    service: str  # service code
    starts_at: datetime  # aware
    ends_at: datetime
    status: str  # booked, confirmed
    plate: str = ""


@dataclass(frozen=True, slots=True)
class Location:
    """Where the owner is: a WeChat location message, or None when only text was given."""

    latitude: float
    longitude: float
    label: str = ""


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a flow may know besides the state and the parse; built by the pipeline."""

    now: datetime  # aware (UTC from the pipeline's clock); flows convert to `timezone`
    lang: str
    dealer_name: str
    dealer_phone: str
    timezone: str
    config: DealerConfig
    customer_name: str = ""
    vehicles: tuple[VehicleInfo, ...] = ()
    threshold: float = 0.45
    # the inbound message's id: flows derive references from it (pure, unique, no randomness)
    message_id: int = 0
    # the workshop's taken slots from now on (about 30 days), and the owner's own appointments;
    # loaded only when flows.engine.needs_calendar says the turn may need them
    booked: tuple[Booked, ...] = ()
    appointments: tuple[AppointmentInfo, ...] = ()
    # a location the owner shared with this message, and the dealer's own position
    location: Location | None = None
    dealer_location: tuple[float, float] | None = None
    # the reminder or survey the dealer sent this owner last, which the message may answer:
    # {"kind": "reminder:maintenance" | "survey" | ..., "sent_at", "vehicle_id", "service", "survey_id",
    # "scale", ...} (bot/outreach.py); None when there is none or it is older than OUTREACH_DAYS
    outreach: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class State:
    """A conversation's flow state, stored as JSON on the conversation row between messages."""

    flow: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    misses: int = 0  # understanding failures in a row

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        return cls(flow=data.get("flow"), slots=dict(data.get("slots") or {}), misses=int(data.get("misses") or 0))

    def with_(self, **changes: Any) -> State:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Handoff:
    """Effect: give the conversation to a person (reason: request, misunderstood, complaint, roadside...)."""

    reason: str
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class CreateAppointment:
    """Effect: book the workshop. The pipeline re-checks capacity under a lock; when the slot
    was taken meanwhile it writes nothing and answers with `if_taken` instead of the turn."""

    reference: str
    service: str  # service code from the dealer's config
    starts_at: datetime  # aware
    minutes: int
    vehicle_id: int | None = None
    plate: str | None = None  # a car not yet on the owner's record
    mileage: int | None = None
    notes: str = ""
    pickup: bool = False
    if_taken: Turn | None = None


@dataclass(frozen=True, slots=True)
class RescheduleAppointment:
    """Effect: move one of the owner's appointments (same capacity check as CreateAppointment)."""

    appointment_id: int
    starts_at: datetime
    minutes: int
    if_taken: Turn | None = None


@dataclass(frozen=True, slots=True)
class CancelAppointment:
    """Effect: cancel one of the owner's appointments."""

    appointment_id: int


@dataclass(frozen=True, slots=True)
class OpenTicket:
    """Effect: open a complaint or roadside ticket, due within `sla_minutes`."""

    reference: str
    kind: str  # complaint | roadside
    category: str  # product_quality | service | other (roadside: the problem, e.g. flat_tyre)
    urgent: bool
    summary: str
    sla_minutes: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpdateTicket:
    """Effect: add what the owner told us since (location, problem...) to an open ticket."""

    reference: str
    details: dict[str, Any]
    category: str | None = None


@dataclass(frozen=True, slots=True)
class AlertStaff:
    """Effect: tell the staff on duty now (an outbox row of kind "alert"), e.g. a roadside case."""

    reason: str
    text: str
    urgent: bool = True
    reference: str = ""


@dataclass(frozen=True, slots=True)
class SetOptOut:
    """Effect: turn the owner's reminders and care messages off (or back on) on the channel this
    message came by; the other channel keeps its own choice (bot/optout.py)."""

    opted_out: bool


@dataclass(frozen=True, slots=True)
class RecordSurveyResponse:
    """Effect: store the owner's answer to a survey. The latest answer counts (an owner may correct
    a score or add the reason); an empty comment keeps the one stored. `ticket` is the reference
    of the low-score ticket opened in the same turn, linked on the response."""

    survey_id: int
    score: int
    comment: str = ""
    ticket: str = ""


@dataclass(frozen=True, slots=True)
class ConfirmAppointment:
    """Effect: the owner confirmed one of their booked appointments (an answer to its reminder)."""

    appointment_id: int


Effect = (
    Handoff
    | CreateAppointment
    | RescheduleAppointment
    | CancelAppointment
    | OpenTicket
    | UpdateTicket
    | AlertStaff
    | SetOptOut
    | RecordSurveyResponse
    | ConfirmAppointment
)


@dataclass(frozen=True, slots=True)
class Turn:
    replies: tuple[Reply, ...]
    state: State
    effects: tuple[Effect, ...] = ()
    # False when this turn answered the outreach (a survey score, a booking from a reminder):
    # the pipeline then forgets it, so the next message is not read as an answer again
    keeps_outreach: bool = True
