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
class Context:
    """Everything a flow may know besides the state and the parse; built by the pipeline."""

    now: datetime
    lang: str
    dealer_name: str
    dealer_phone: str
    timezone: str
    config: DealerConfig
    customer_name: str = ""
    vehicles: tuple[VehicleInfo, ...] = ()
    threshold: float = 0.45


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


Effect = Handoff


@dataclass(frozen=True, slots=True)
class Turn:
    replies: tuple[Reply, ...]
    state: State
    effects: tuple[Effect, ...] = ()
