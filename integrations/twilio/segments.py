"""How many SMS segments Twilio bills for a body, and cutting a body down to a segment budget.

A body is GSM-7 when every character is in the 3GPP TS 23.038 default alphabet or its extension
table, otherwise UCS-2. A single GSM-7 segment holds 160 septets, a single UCS-2 segment 70 UTF-16
code units. Longer bodies are concatenated: the user data header leaves 153 septets or 67 units per
part, and a part never ends in the middle of an escape pair (GSM-7) or of a surrogate pair
(UCS-2), so parts are packed greedily rather than divided out.

Twilio's "smart encoding" (replacing curly quotes and the like) is off unless the messaging service
turns it on; we count as if it is off, which never undercounts.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# The default alphabet, in table order; the escape (0x1B) itself is not a character one can send.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
# Reached through the escape, so each costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM7_SINGLE, GSM7_PART = 160, 153  # septets
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units

MAX_BODY = 1600  # Twilio rejects a longer body (error 21617)

GSM7_ELLIPSIS = "..."


@dataclass(frozen=True)
class Segments:
    encoding: str  # GSM7 or UCS2
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def count(text: str) -> Segments:
    """Counts the segments Twilio bills for `text`.

    An empty body still counts as one segment: Twilio bills it as one message (a media-only MMS
    aside), so a budget check must never treat it as free.
    """
    if is_gsm7(text):
        costs = [_septets(char) for char in text]
        return Segments(GSM7, _pack(costs, GSM7_SINGLE, GSM7_PART), sum(costs))
    costs = [_utf16_units(char) for char in text]
    return Segments(UCS2, _pack(costs, UCS2_SINGLE, UCS2_PART), sum(costs))


def is_gsm7(text: str) -> bool:
    """Tells whether every character of `text` can be sent in GSM-7."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def fit(text: str, max_segments: int, *, prefix: str = "", suffix: str = "", ellipsis: str = "…") -> str:
    """Returns `prefix + text + suffix`, cutting the end of `text` (marked by `ellipsis`) to fit.

    The result is at most `max_segments` segments and MAX_BODY characters. Only `text` is cut: the
    prefix (the dealer's signature) and the suffix (the opt-out line) are kept whole. Whitespace
    before the ellipsis is dropped, and a cut never separates a character from the surrogate,
    combining mark, variation selector or joiner that belongs to it.

    A non-GSM ellipsis such as "…" would turn a GSM-7 message into UCS-2 and more than halve what a
    segment holds, so a message that is GSM-7 as a whole gets "..." instead.

    When not even `prefix + ellipsis + suffix` fits, the text is dropped and `prefix + suffix`
    itself is cut from its end, without an ellipsis: the prefix names the sender and matters most,
    and a bare budget this small is a caller's mistake we would rather degrade than raise on.
    """
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")

    def fits(body: str) -> bool:
        return _body_length(body) <= MAX_BODY and count(body).segments <= max_segments

    whole = prefix + text + suffix
    if fits(whole):
        return whole
    if is_gsm7(whole) and not is_gsm7(ellipsis):
        ellipsis = GSM7_ELLIPSIS

    def cut(keep: int) -> str:
        return prefix + text[: _safe_cut(text, keep)].rstrip() + ellipsis + suffix

    if not fits(cut(0)):
        bare = prefix + suffix
        return bare[: _safe_cut(bare, _longest(len(bare), lambda keep: fits(bare[: _safe_cut(bare, keep)])))]
    return cut(_longest(len(text), lambda keep: fits(cut(keep))))


def _septets(char: str) -> int:
    return 2 if char in GSM7_EXTENSION else 1


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _pack(costs: list[int], single: int, part: int) -> int:
    """Counts the parts when no character (escape pair, surrogate pair) may straddle two of them."""
    if sum(costs) <= single:
        return 1
    parts, filled = 1, 0
    for cost in costs:
        if filled + cost > part:
            parts, filled = parts + 1, 0
        filled += cost
    return parts


def _body_length(body: str) -> int:
    # Twilio's 1600 "characters" are measured by a UTF-16 runtime; counting code units is never
    # less than counting code points, so it cannot let an over-long body through.
    return sum(_utf16_units(char) for char in body)


def _safe_cut(text: str, keep: int) -> int:
    """Moves a cut after `keep` characters back until it does not split what belongs together."""
    while 0 < keep < len(text) and (_continues(text[keep]) or _joins(text[keep - 1])):
        keep -= 1
    return keep


def _continues(char: str) -> bool:
    # a low surrogate (a str built with "surrogatepass"), a combining mark, a variation selector,
    # an emoji skin tone or a zero-width joiner: each only makes sense after what precedes it
    return (
        "\udc00" <= char <= "\udfff"
        or unicodedata.combining(char) != 0
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or char == "\u200d"
    )


def _joins(char: str) -> bool:
    # a high surrogate or a joiner needs what follows it
    return "\ud800" <= char <= "\udbff" or char == "\u200d"


def _longest(limit: int, fits: Callable[[int], bool]) -> int:
    """Finds the largest `keep` in 0..limit that fits, given that fitting only gets harder as it grows."""
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
