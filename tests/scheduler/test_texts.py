"""The reminder texts: both languages, the booking call to action, no signature, dealer wording."""
from __future__ import annotations

from datetime import date

from scheduler import rules, texts


def test_every_text_exists_in_chinese_and_english_with_the_same_placeholders() -> None:
    zh, en = texts.catalogue("zh"), texts.catalogue("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert _placeholders(zh[key]) == _placeholders(en[key]), key


def test_every_rule_has_its_text() -> None:
    keys = texts.catalogue("zh").keys()
    for code in set(rules.RULES) - {"holiday", "survey"}:
        assert f"reminder.{code}" in keys
    assert {"survey.csat", "survey.nps", "holiday.custom"} <= keys


def test_booking_reminders_end_with_the_call_to_action_the_flows_read() -> None:
    for code in rules.BOOKING_RULES:
        assert texts.text(f"reminder.{code}", "zh").endswith("回复1或“预约”即可预约。"), code
        assert texts.text(f"reminder.{code}", "en").endswith("Reply 1 or BOOK to book."), code


def test_no_text_carries_the_sms_signature() -> None:
    for lang in texts.LANGUAGES:
        assert not [key for key, value in texts.catalogue(lang).items() if "【" in value]


def test_a_dealers_template_renders_and_a_misspelled_placeholder_renders_empty() -> None:
    params = {"name": "王先生", "plate": "粤A12345"}
    assert texts.render("reminder.maintenance", "zh", params, "{name}，{plate}该保养了{plaet}") == "王先生，粤A12345该保养了"


def test_a_template_that_cannot_be_rendered_falls_back_to_ours() -> None:
    ours = texts.render("reminder.birthday", "zh", {"name": "王先生", "dealer": "测试店"})
    assert texts.render("reminder.birthday", "zh", {"name": "王先生", "dealer": "测试店"}, "生日快乐{") == ours


def test_an_unknown_language_is_written_in_chinese() -> None:
    assert texts.language("fr") == "zh"
    assert texts.format_date(date(2027, 3, 5), "zh") == "2027年3月5日"
    assert texts.format_date(date(2027, 3, 5), "en") == "5 March 2027"


def _placeholders(template: str) -> set[str]:
    import string

    return {field for _, field, _, _ in string.Formatter().parse(template) if field}
