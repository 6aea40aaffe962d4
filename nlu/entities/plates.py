"""Chinese licence plates: 粤B12345, 粤B·D12345 (new energy), 粤B1234学, as owners type them."""
from __future__ import annotations

import re

from nlu.parse import Entity

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# trailer, learner, police, Hong Kong / Macau cross-border, consulate
SUFFIXES = "挂学警港澳领"

# full-width ASCII (ＡＢ１２, －, ．) and the ideographic space fold one-to-one onto ASCII, so
# offsets into the folded text are offsets into the original; full NFKC could change lengths
_WIDTH_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

# between the city letter and the number: 粤B·12345, 粤B•12345, 粤B.12345, 粤B-12345, 粤B 12345
_SEP = r"(?:\s?[·•.\-・‧∙]\s?|\s)?"
_END = r"(?![A-Za-z0-9])"

# re.ASCII keeps IGNORECASE from folding exotic letters (ſ, the Kelvin sign) onto A-Z
_PLATE = re.compile(
    rf"(?P<prov>[{PROVINCES}])\s?(?P<city>[A-Z]){_SEP}(?P<body>"
    # new energy, small car: D/F then a letter or digit then four digits (8 characters in all)
    rf"[DF][A-Z0-9]\d{{4}}{_END}"
    # new energy, large vehicle: five digits then D/F
    rf"|\d{{5}}[DF]{_END}"
    # special use: four characters and a trailing 挂/学/警/港/澳/领
    rf"|[A-Z0-9]{{4}}[{SUFFIXES}]"
    # ordinary: five letters or digits
    rf"|[A-Z0-9]{{5}}{_END}"
    r")"
    # embassy plates: 使 and six digits
    rf"|(?P<embassy>使{_SEP}\d{{6}}){_END}",
    re.ASCII | re.IGNORECASE,
)


def fold_width(text: str) -> str:
    """Returns the text with full-width ASCII as ASCII; the length never changes."""
    return text.translate(_WIDTH_FOLD)


def _normalize(match: re.Match[str]) -> str | None:
    """Returns the plate without separators, upper case; None when it is not plausible."""
    if match.group("embassy"):
        return "使" + re.sub(r"\D", "", match.group("embassy"))
    body = match.group("body").upper()
    # real ordinary plates carry at most two letters (three in a few cities): this keeps
    # "新IPHONE" or "京ABCDE" in a sentence from reading as a plate
    if len(body) == 5 and sum(c.isdigit() for c in body) < 2:
        return None
    return match.group("prov") + match.group("city").upper() + body


def extract_plates(text: str) -> list[Entity]:
    """Returns every licence plate in the text, value normalised like "粤B12345"."""
    if not text:
        return []
    folded = fold_width(text)
    found = []
    for match in _PLATE.finditer(folded):
        value = _normalize(match)
        if value is None:
            continue
        start, end = match.span()
        found.append(Entity("plate", value, start, end, text[start:end]))
    return found


def valid_plate(s: str) -> bool:
    """True when the whole string (give or take spaces around it) is one plate."""
    if not s:
        return False
    match = _PLATE.fullmatch(fold_width(s).strip())
    return match is not None and _normalize(match) is not None
