"""SMS segments counted the way Twilio bills them, and bodies cut down to a segment budget."""
from __future__ import annotations

import pytest

from integrations.twilio.segments import GSM7, MAX_BODY, UCS2, Segments, count, fit

EMOJI = "😀"  # outside the BMP: two UTF-16 code units


@pytest.mark.parametrize(("length", "segments"), [(160, 1), (161, 2), (306, 2), (307, 3)])
def test_ascii_fills_160_septets_then_153_per_part(length: int, segments: int) -> None:
    assert count("a" * length) == Segments(GSM7, segments, length)


@pytest.mark.parametrize(("braces", "segments"), [(80, 1), (81, 2)])
def test_extension_characters_cost_two_septets(braces: int, segments: int) -> None:
    assert count("{" * braces) == Segments(GSM7, segments, 2 * braces)


def test_an_escape_pair_at_the_153_boundary_moves_to_the_next_part() -> None:
    # 306 septets would divide into two parts, but "{" cannot start at septet 153 of the first
    text = "a" * 152 + "{" + "a" * 152

    assert count(text) == Segments(GSM7, 3, 306)


def test_a_euro_sign_is_gsm7_and_costs_two_septets() -> None:
    assert count("€") == Segments(GSM7, 1, 2)


def test_the_whole_default_alphabet_is_gsm7() -> None:
    alphabet = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ÄÖÑÜ§¿äöñüà\f^{}\\[~]|€"

    assert count(alphabet).encoding == GSM7


@pytest.mark.parametrize("text", ["“quoted”", "ç", "Ma’am", "`"])
def test_a_character_outside_gsm7_forces_ucs2(text: str) -> None:
    assert count(text).encoding == UCS2


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_chinese_fills_70_units_then_67_per_part(length: int, segments: int) -> None:
    assert count("你" * length) == Segments(UCS2, segments, length)


@pytest.mark.parametrize(("emoji", "segments"), [(35, 1), (36, 2)])
def test_an_emoji_counts_two_units(emoji: int, segments: int) -> None:
    assert count(EMOJI * emoji) == Segments(UCS2, segments, 2 * emoji)


def test_a_surrogate_pair_is_not_split_at_the_67_boundary() -> None:
    # 134 units would divide into two parts, but 33 emoji leave one unit free: the 34th moves on
    assert count(EMOJI * 67) == Segments(UCS2, 3, 134)
    # one ASCII letter in front lines the pairs up with the boundary again
    assert count("a" + EMOJI * 66) == Segments(UCS2, 2, 133)


def test_mixed_english_and_chinese_is_one_ucs2_segment() -> None:
    assert count("Hello 你好") == Segments(UCS2, 1, 8)


def test_an_empty_body_is_billed_as_one_segment() -> None:
    assert count("") == Segments(GSM7, 1, 0)


def test_fit_returns_a_body_that_fits_unchanged() -> None:
    body = fit("Your car is ready.", 1, prefix="[Acme] ", suffix=" STOP to opt out")

    assert body == "[Acme] Your car is ready. STOP to opt out"


def test_fit_cuts_the_text_but_keeps_prefix_and_suffix_whole() -> None:
    body = fit("word " * 100, 1, prefix="[Acme Motors] ", suffix="\nReply STOP to opt out")

    assert body.startswith("[Acme Motors] word word")
    assert body.endswith("word...\nReply STOP to opt out")
    assert count(body).segments == 1


def test_fit_keeps_a_gsm7_message_gsm7_with_three_dots() -> None:
    body = fit("a" * 400, 1)

    assert count(body) == Segments(GSM7, 1, 160)
    assert body == "a" * 157 + "..."


def test_fit_uses_the_given_ellipsis_when_the_message_is_ucs2_anyway() -> None:
    body = fit("你好" * 100, 1, prefix="【Acme】", suffix="回T退订")

    assert body.startswith("【Acme】你好")
    assert body.endswith("…回T退订")
    assert count(body) == Segments(UCS2, 1, 70)


def test_fit_does_not_split_an_emoji() -> None:
    body = fit(EMOJI * 100, 1)

    assert body == EMOJI * 34 + "…"  # 68 units and the ellipsis: a 35th emoji would need 71
    assert body.encode("utf-16-le").decode("utf-16-le") == body


def test_fit_does_not_split_a_surrogate_pair_spelled_out() -> None:
    # a str decoded with "surrogatepass" keeps the two halves as two characters
    pair = "\ud83d\ude00"

    body = fit("ab" + pair * 100, 1)

    assert body == "ab" + pair * 33 + "…"  # the high half alone would still have fitted


def test_fit_does_not_separate_an_emoji_from_its_skin_tone() -> None:
    thumbs = "👍🏽"

    body = fit("abc" + thumbs * 40, 1)

    assert body == "abc" + thumbs * 16 + "…"  # the hand without its tone would still have fitted


@pytest.mark.parametrize("max_segments", [1, 2, 3, 10])
@pytest.mark.parametrize("text", ["a" * 2000, "{" * 2000, "你" * 2000, EMOJI * 2000, "Hi 你好 😀 {}" * 300])
def test_fit_never_exceeds_the_budget(text: str, max_segments: int) -> None:
    body = fit(text, max_segments, prefix="[Acme] ", suffix=" STOP=opt out")

    assert count(body).segments <= max_segments
    assert len(body) <= MAX_BODY
    assert body.startswith("[Acme] ") and body.endswith(" STOP=opt out")


def test_fit_caps_the_body_at_twilios_1600_characters() -> None:
    body = fit("a" * 5000, 20)

    assert len(body) == MAX_BODY
    assert body.endswith("...")


def test_fit_keeps_what_fits_of_prefix_and_suffix_when_even_the_ellipsis_does_not() -> None:
    body = fit("the text", 1, prefix="p" * 100, suffix="s" * 100)

    assert body == "p" * 100 + "s" * 60


def test_fit_refuses_a_budget_below_one_segment() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        fit("hello", 0)
