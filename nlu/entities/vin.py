"""Vehicle identification numbers (ISO 3779 / GB 16735): 17 characters, no I, O or Q."""
from __future__ import annotations

import re

from nlu.entities.plates import fold_width
from nlu.parse import Entity

# confidence when the check digit (position 9) is wrong: owners mistype, and some makers
# outside North America never computed it, so the VIN is still worth handing to a human
UNCHECKED_CONFIDENCE = 0.6

_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)

# the last four characters are the serial number's digits in every VIN a Chinese dealer sees;
# requiring them (and a letter somewhere) keeps 17-digit order numbers and English words out
_VIN = re.compile(
    r"(?<![A-Za-z0-9])(?=[0-9]*[A-HJ-NPR-Z])[A-HJ-NPR-Z0-9]{13}[0-9]{4}(?![A-Za-z0-9])",
    re.ASCII | re.IGNORECASE,
)


def vin_check_digit(vin: str) -> str:
    """Returns the ISO 3779 check digit ("0"-"9" or "X") the 17-character VIN should carry."""
    vin = vin.upper()
    if len(vin) != 17 or any(c not in _TRANSLITERATION for c in vin):
        raise ValueError(f"not a 17-character VIN: {vin!r}")
    remainder = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS)) % 11
    return "X" if remainder == 10 else str(remainder)


def extract_vins(text: str) -> list[Entity]:
    """Returns every VIN in the text, upper case; confidence 0.6 when the check digit fails."""
    if not text:
        return []
    found = []
    for match in _VIN.finditer(fold_width(text)):
        value = match.group().upper()
        confidence = 1.0 if vin_check_digit(value) == value[8] else UNCHECKED_CONFIDENCE
        start, end = match.span()
        found.append(Entity("vin", value, start, end, text[start:end], confidence=confidence))
    return found
