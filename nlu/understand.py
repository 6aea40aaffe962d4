"""Understanding one message: the backend's intent plus DealerCare's own entity extractors."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from nlu.entities.extract import extract_entities
from nlu.parse import NLU, Parse


def understand(nlu: NLU, text: str, *, now: datetime, lang: str = "zh") -> Parse:
    """Classifies the message and adds its entities, resolved against `now` (dealer-local, aware).

    The extractors are the same whichever backend classifies, so the flows see the same plates
    and dates with Rasa as without; an entity type only the backend knows is kept as it came.
    """
    parse = nlu.parse(text, lang)
    ours = extract_entities(text, now)
    kinds = {entity.entity for entity in ours}
    theirs = tuple(entity for entity in parse.entities if entity.entity not in kinds)
    return replace(parse, entities=tuple(sorted(ours + theirs, key=lambda entity: entity.start)))
