"""The NLU protocol and its result, shaped like Rasa's `/model/parse` response."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class Entity:
    entity: str
    value: Any
    start: int
    end: int
    text: str = ""
    extractor: str = "dealercare"
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Parse:
    text: str
    intent: IntentScore
    entities: tuple[Entity, ...] = ()
    ranking: tuple[IntentScore, ...] = ()
    # retrieval intents (ask_question/hours): the sub-intent Rasa's ResponseSelector would give
    response: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.intent.name

    @property
    def confidence(self) -> float:
        return self.intent.confidence

    def entity(self, name: str) -> Entity | None:
        """Returns the first entity of that name, if any."""
        return next((e for e in self.entities if e.entity == name), None)

    def to_rasa(self) -> dict[str, Any]:
        """Returns the parse in Rasa's `/model/parse` JSON shape."""
        out: dict[str, Any] = {
            "text": self.text,
            "intent": asdict(self.intent),
            "entities": [
                {k: v for k, v in asdict(e).items() if k != "text"} | {"value": _jsonable(e.value)}
                for e in self.entities
            ],
            "intent_ranking": [asdict(r) for r in self.ranking],
        }
        if self.response:
            out["response_selector"] = {
                "default": {"response": {"intent_response_key": self.response, "confidence": self.confidence}}
            }
        return out

    @classmethod
    def from_rasa(cls, data: dict[str, Any]) -> Parse:
        """Builds a parse from Rasa's `/model/parse` JSON."""
        intent = data.get("intent") or {}
        ranking = tuple(
            IntentScore(r["name"], float(r.get("confidence", 0.0))) for r in data.get("intent_ranking") or []
        )
        entities = tuple(
            Entity(
                entity=e["entity"],
                value=e.get("value"),
                start=int(e.get("start", 0)),
                end=int(e.get("end", 0)),
                extractor=e.get("extractor") or "rasa",
                confidence=float(e.get("confidence_entity", e.get("confidence", 1.0)) or 1.0),
            )
            for e in data.get("entities") or []
        )
        response = None
        selector = (data.get("response_selector") or {}).get("default") or {}
        if selector:
            response = (selector.get("response") or {}).get("intent_response_key")
        return cls(
            text=data.get("text", ""),
            intent=IntentScore(intent.get("name") or OUT_OF_SCOPE, float(intent.get("confidence") or 0.0)),
            entities=entities,
            ranking=ranking,
            response=response,
        )


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class NLU(Protocol):
    """Anything that understands an owner's message: the built-in model, Rasa over HTTP."""

    def parse(self, text: str, lang: str = "zh") -> Parse: ...
