"""What an inbound SMS asks of the channel itself (stop, start again, help), decided before any NLU.

Exact keywords follow Twilio's Advanced Opt-Out list and the Chinese carriers' convention
("回复T退订"); a few precise patterns catch owners who opt out in plain words instead. Anything
that could be a question about opting out, a negation or a reply in a dialog is left to the NLU.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

MAX_PHRASE = 30  # a plain-words opt-out is a short message of its own, not part of a longer one


class Command(str, Enum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"


@dataclass(frozen=True)
class Keyword:
    command: Command
    lang: str  # "en" or "zh": the language to answer in


# Compared after NFKC, casefolding and dropping spaces, hyphens and underscores, so "OPT OUT",
# "opt-out" and "STOP ALL" need no entries of their own.
EXACT: dict[str, Keyword] = {
    **dict.fromkeys(
        ["stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"], Keyword(Command.opt_out, "en")
    ),
    # "TD" and "T" are what Chinese carriers tell subscribers to reply, so whoever sends them reads Chinese
    **dict.fromkeys(["退订", "td", "t", "取消订阅", "退订短信", "拒收"], Keyword(Command.opt_out, "zh")),
    **dict.fromkeys(["start", "unstop", "yes"], Keyword(Command.opt_in, "en")),
    **dict.fromkeys(["订阅", "恢复订阅", "重新订阅", "开通"], Keyword(Command.opt_in, "zh")),
    **dict.fromkeys(["help", "info"], Keyword(Command.help, "en")),
    **dict.fromkeys(["帮助"], Keyword(Command.help, "zh")),
}

# Twilio's OptOutType webhook parameter, sent when its Advanced Opt-Out matched a keyword.
OPT_OUT_TYPES = {"STOP": Command.opt_out, "START": Command.opt_in, "HELP": Command.help}

# Each pattern matches a whole message (spaces and punctuation removed). They start with the
# demand itself, so questions (怎么退订), negations (我不想退订, 别退订我) and requests to send
# (请发短信给我, 再发一遍) cannot match. "不用发了" is left out on purpose: it declines one offer
# ("shall I send you the quote?"), it does not opt out.
_POLITE = r"(?:请|麻烦|拜托)?(?:你们?)?"
_NOUN = r"(?:短信|信息|消息|广告|推送|通知)"
_END = r"(?:了|啦|吧)?(?:好吗|行吗|谢谢|谢谢你们?|谢啦)?"
ZH_OPT_OUT = [
    # 别再发了, 不要再给我发短信, 请不要再发信息给我, 别发短信了
    re.compile(rf"{_POLITE}(?:别|不要|请勿|勿)再?(?:给我|向我|对我)?(?:发|推送|推)(?:任何)?{_NOUN}?(?:给我|过来)?{_END}"),
    # 别再骚扰我了
    re.compile(rf"{_POLITE}(?:别|不要)再?(?:骚扰|打扰)我?{_END}"),
    # 我要退订, 请帮我退订, 退订谢谢
    re.compile(rf"{_POLITE}(?:帮我|给我)?(?:我要|我想|我需要|我申请)?(?:退订|取消订阅|拒收){_NOUN}?(?:一下)?{_END}"),
    # 不想再收到短信了, 不想再收到你们的短信
    re.compile(rf"我?(?:不想|不要|不愿意|不需要|拒绝)再?(?:收到|接收|收)(?:你们的?|你们发的|任何)?{_NOUN}{_END}"),
]
EN_OPT_OUT = [
    # stop texting me, please stop, stop sending me messages
    re.compile(
        r"(?:please )?stop(?: (?:texting|messaging|sending|contacting|spamming|txting)(?: me)?"
        r"(?: (?:messages|texts|text messages|sms))?)?(?: please)?(?: now)?(?: thanks| thank you)?"
    ),
    # don't text me again, do not message me anymore
    re.compile(
        r"(?:please )?(?:don't|dont|do not) (?:text|message|txt|contact|sms) me(?: (?:again|anymore|any more))?(?: please)?"
    ),
    # unsubscribe me, remove me from your list
    re.compile(r"(?:please )?(?:unsubscribe me|remove me(?: from (?:your|this|the) (?:list|texts|messages))?)(?: please)?"),
]


def keyword(text: str, opt_out_type: str | None = None) -> Keyword | None:
    """Tells which channel command an inbound SMS is, or None when it is for the bot.

    `opt_out_type` is Twilio's OptOutType parameter; when present and known it decides the command,
    since Twilio has already acted on it (the language still comes from the text).

    Opt-in and help count only as exact keywords: "YES" also answers a booking question and
    "帮助我预约" asks for a booking, so the caller must treat an opt-in keyword as opt-in only when
    the number is opted out, and hand it to the NLU otherwise. Opt-out also accepts a few plain
    phrases ("别再发了", "stop texting me"), because ignoring an opt-out costs more than a mistaken one, which START undoes.
    """
    stripped = _strip(unicodedata.normalize("NFKC", text))
    exact = EXACT.get(re.sub(r"[\s\-_]+", "", stripped).casefold())
    if opt_out_type is not None and (command := OPT_OUT_TYPES.get(opt_out_type.strip().upper())) is not None:
        return Keyword(command, exact.lang if exact else _lang(stripped))
    if exact is not None:
        return exact
    if len(stripped) > MAX_PHRASE:
        return None
    if _has_han(stripped):
        compact = "".join(char for char in stripped if not _is_filler(char))
        return Keyword(Command.opt_out, "zh") if any(p.fullmatch(compact) for p in ZH_OPT_OUT) else None
    return Keyword(Command.opt_out, "en") if any(p.fullmatch(_words(stripped)) for p in EN_OPT_OUT) else None


def _strip(text: str) -> str:
    """Removes whitespace, punctuation and symbols (。！, emoji) around the message."""
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_edge(char: str) -> bool:
    # punctuation, separators, controls and format characters, other and modifier symbols
    # (emoji, skin tones) and combining marks (variation selectors)
    category = unicodedata.category(char)
    return category[0] in "PZC" or category in ("So", "Sk", "Mn")


def _words(text: str) -> str:
    """Lower-cases English and turns inner punctuation into single spaces, keeping apostrophes (don't)."""
    text = text.replace("\u2019", "'")  # the curly apostrophe phones type
    return " ".join("".join(" " if _is_filler(char) and char != "'" else char for char in text).split()).casefold()


def _is_filler(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] == "P"


def _has_han(text: str) -> bool:
    # the unified ideographs, extension A, the compatibility block and the supplementary planes' extensions
    return any(
        "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\uf900" <= char <= "\ufaff"
        or "\U00020000" <= char <= "\U0003134f"
        for char in text
    )


def _lang(text: str) -> str:
    return "zh" if _has_han(text) else "en"
