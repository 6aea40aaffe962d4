"""Runs every entity extractor over a message and settles overlaps between them."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from nlu.entities.dates import extract_times
from nlu.entities.mileage import extract_mileage
from nlu.entities.phones import extract_phones
from nlu.entities.places import extract_places
from nlu.entities.plates import extract_plates
from nlu.entities.services import extract_services
from nlu.entities.vin import extract_vins
from nlu.parse import Entity

log = logging.getLogger(__name__)

# an owner's message is short; past this it is a paste (a log, a forwarded article) and the
# entities that matter to a booking are at the top
MAX_CHARS = 2000

# on equal spans the more specific, better checked pattern wins
PRIORITY = ("vin", "plate", "phone", "time", "mileage", "service", "place")
_RANK = {name: i for i, name in enumerate(PRIORITY)}

_EXTRACTORS: tuple[Callable[[str], list[Entity]], ...] = (
    extract_vins,
    extract_plates,
    extract_phones,
    extract_mileage,
    extract_services,
    extract_places,
)


def _safely(name: str, run: Callable[[], Iterable[Entity]], text: str) -> list[Entity]:
    """Returns what one extractor found; a bug in it costs its entities, never the message."""
    try:
        found = list(run())
    except Exception:  # any bug in one extractor must not fail the whole message
        log.exception("entity extractor %s failed on a %d-character message", name, len(text))
        return []
    # an extractor with broken offsets would point the flows at the wrong characters
    return [e for e in found if isinstance(e, Entity) and 0 <= e.start < e.end <= len(text)]


def resolve_overlaps(entities: Iterable[Entity]) -> tuple[Entity, ...]:
    """Keeps, of overlapping entities, the longer span, then the higher PRIORITY; sorted by start."""
    kept: list[Entity] = []
    ranked = sorted(entities, key=lambda e: (e.start - e.end, _RANK.get(e.entity, len(PRIORITY)), e.start))
    for entity in ranked:
        if all(entity.end <= k.start or k.end <= entity.start for k in kept):
            kept.append(entity)
    return tuple(sorted(kept, key=lambda e: (e.start, e.end)))


def extract_entities(text: str, now: datetime) -> tuple[Entity, ...]:
    """Returns the entities in the message: times, plates, phones, mileage, VIN, services, places."""
    if not isinstance(text, str) or not text:
        return ()
    text = text[:MAX_CHARS]
    found: list[Entity] = []
    for extractor in _EXTRACTORS:
        found += _safely(extractor.__name__, lambda f=extractor: f(text), text)
    found += _safely("extract_times", lambda: extract_times(text, now), text)
    return resolve_overlaps(found)
