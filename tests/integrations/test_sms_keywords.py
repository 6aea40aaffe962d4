"""The commands an inbound SMS gives the channel itself, before the NLU sees it."""
from __future__ import annotations

import pytest

from integrations.twilio.keywords import Command, Keyword, keyword

OPT_OUT_EN = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT", "STOP ALL"]
OPT_OUT_ZH = ["退订", "TD", "T", "取消订阅", "退订短信", "拒收"]
OPT_IN_EN = ["START", "UNSTOP", "YES"]
OPT_IN_ZH = ["订阅", "恢复订阅", "重新订阅", "开通"]
HELP_EN = ["HELP", "INFO"]
HELP_ZH = ["帮助"]


def dressed(word: str) -> list[str]:
    """The ways a phone sends one keyword: any case, stray spaces, punctuation, full-width letters."""
    full_width = "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in word.lower())
    return [word, word.lower(), word.capitalize(), f"  {word} \n", f"{word}!", f"{word}.", f"{word}。", f"“{word}”", full_width]


def cases(words: list[str], expected: Keyword) -> list[tuple[str, Keyword]]:
    return [(text, expected) for word in words for text in dressed(word)]


@pytest.mark.parametrize(
    ("text", "expected"),
    cases(OPT_OUT_EN, Keyword(Command.opt_out, "en"))
    + cases(OPT_OUT_ZH, Keyword(Command.opt_out, "zh"))
    + cases(OPT_IN_EN, Keyword(Command.opt_in, "en"))
    + cases(OPT_IN_ZH, Keyword(Command.opt_in, "zh"))
    + cases(HELP_EN, Keyword(Command.help, "en"))
    + cases(HELP_ZH, Keyword(Command.help, "zh")),
)
def test_every_keyword_is_recognised_however_it_is_typed(text: str, expected: Keyword) -> None:
    assert keyword(text) == expected


@pytest.mark.parametrize("text", ["Stop", " stop ", "STOP!", "stop!!!", "Stop 🛑", "opt-out", "ＳＴＯＰ"])
def test_stop_survives_the_usual_noise(text: str) -> None:
    assert keyword(text) == Keyword(Command.opt_out, "en")


@pytest.mark.parametrize("text", ["退订。", "退订！", "，退订、", "退订？", " 退订 ", "ｔｄ", "ＴＤ", "t"])
def test_chinese_opt_out_survives_chinese_punctuation_and_full_width_letters(text: str) -> None:
    assert keyword(text) == Keyword(Command.opt_out, "zh")


@pytest.mark.parametrize(
    ("text", "lang"),
    [("STOP", "en"), ("退订", "zh"), ("TD", "zh"), ("T", "zh"), ("YES", "en"), ("订阅", "zh"), ("INFO", "en"), ("帮助", "zh")],
)
def test_a_keyword_answers_in_its_own_language(text: str, lang: str) -> None:
    assert keyword(text).lang == lang  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "opt_out_type", "expected"),
    [
        ("Stop it now", "STOP", Keyword(Command.opt_out, "en")),
        ("不要再发了谢谢你", "STOP", Keyword(Command.opt_out, "zh")),
        ("TD", "STOP", Keyword(Command.opt_out, "zh")),
        ("yes", "START", Keyword(Command.opt_in, "en")),
        ("STOP", "START", Keyword(Command.opt_in, "en")),
        ("需要帮忙", "help", Keyword(Command.help, "zh")),
        ("anything", " HELP ", Keyword(Command.help, "en")),
    ],
)
def test_twilios_opt_out_type_decides_the_command(text: str, opt_out_type: str, expected: Keyword) -> None:
    assert keyword(text, opt_out_type) == expected


@pytest.mark.parametrize("opt_out_type", ["", "UNKNOWN"])
def test_an_unknown_opt_out_type_leaves_the_text_to_decide(opt_out_type: str) -> None:
    assert keyword("退订", opt_out_type) == Keyword(Command.opt_out, "zh")
    assert keyword("when is my service due", opt_out_type) is None


@pytest.mark.parametrize(
    "text",
    [
        "别再发了",
        "别再给我发了",
        "不要再发了",
        "不要再给我发短信",
        "不要再发短信了",
        "别发短信了",
        "请不要再发信息给我",
        "我要退订",
        "退订谢谢",
        "请帮我退订",
        "不想再收到短信了",
        "不想再收到你们的短信",
        "别再发了！",
        "退订，谢谢。",
        "别再骚扰我了",
        "我不想再收到你们的信息",
    ],
)
def test_plain_chinese_that_opts_out(text: str) -> None:
    assert keyword(text) == Keyword(Command.opt_out, "zh")


@pytest.mark.parametrize(
    "text",
    [
        "stop texting me",
        "Please stop",
        "please stop!",
        "Stop sending me messages",
        "stop messaging me please",
        "Don’t text me again",
        "unsubscribe me",
    ],
)
def test_plain_english_that_opts_out(text: str) -> None:
    assert keyword(text) == Keyword(Command.opt_out, "en")


@pytest.mark.parametrize(
    "text",
    [
        "怎么退订",
        "退订怎么操作？",
        "我不想退订",
        "不退订",
        "别退订我",
        "短信发了吗",
        "预约发短信通知我",
        "能不能再发一次短信",
        "再发一遍",
        "请发短信给我",
        "不用发了",
        "不要发票了",
        "别发错了",
        "don't stop",
        "when does the shop stop working",
        "is there a stop sign near you",
    ],
)
def test_questions_negations_and_requests_to_send_are_left_to_the_nlu(text: str) -> None:
    assert keyword(text) is None


@pytest.mark.parametrize(
    "text", ["YES please book", "yes, Tuesday works", "start my car", "帮助我预约", "开通了吗", "订阅号在哪", "info about brakes"]
)
def test_opt_in_and_help_count_only_as_exact_words(text: str) -> None:
    assert keyword(text) is None


def test_a_long_message_that_mentions_opting_out_is_not_an_opt_out() -> None:
    assert keyword("我上周做了保养，师傅说刹车片快到极限了，别再发了这种提醒我也知道要换，就想问问价格") is None
