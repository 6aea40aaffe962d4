"""Where the car is, as owners write it for roadside help: 在广州大道中100号, 广深高速K45, XX服务区.

Heuristics, tuned for precision over recall:
- after 在/位于/到了/停在 a run of Chinese, letters and digits that ends in a place word
  (路, 街, 大道, 高速, 服务区, 小区, 广场, 区, 市...), with the trailing details owners add
  (中100号, 往深圳方向, K45+500, 出口, 附近, B2);
- without such a prefix only the unmistakable ones (服务区, 收费站, 高速, 加油站, 停车场,
  地铁站...), a district followed by a road (天河区体育西路), or a highway code (G4, S15) with
  a K-marker or a highway word;
- in English, "on the M25" / "at Baker Street".
"我在想", "在吗", "现在" and "在路上" are no places: the run may not contain verbs or
pronouns, 现在/正在 are not a 在 prefix, and a place word needs something before it.
"""
from __future__ import annotations

import re

from nlu.entities.plates import fold_width
from nlu.parse import Entity

_CJK = "\u4e00-\u9fff"
# verbs, pronouns and particles end a run: a place name almost never contains them
_STOP = "想说等看是的了吗呢吧啊呀去来要会能和跟把被给让就都也还很我你他她它这那哪么什怎在到从往向有没过着请帮"
_RUN_CHAR = rf"(?:(?![{_STOP}])[{_CJK}A-Za-z0-9])"

# place words that need a 在-like prefix: on their own they are too common ("路上", "地区")
_SUFFIXES = (
    "高速公路", "服务区", "收费站", "加油站", "充电站", "停车场", "地铁站", "公交站", "立交桥", "大道", "大街",
    "高速", "公路", "国道", "省道", "出口", "入口", "隧道", "立交", "小区", "广场", "商场", "医院", "学校",
    "大厦", "花园", "路", "街", "道", "巷", "桥", "区", "县", "镇", "乡", "村", "市", "省",
)
# place words that are places even without a prefix
_DISTINCT = ("高速公路", "服务区", "收费站", "加油站", "充电站", "停车场", "地铁站", "立交桥", "高速", "国道", "省道", "隧道")

_SUFFIX_RE = "|".join(sorted(_SUFFIXES, key=len, reverse=True))
_DISTINCT_RE = "|".join(sorted(_DISTINCT, key=len, reverse=True))
_HIGHWAY = r"(?<![A-Za-z0-9])[GS]\d{1,4}(?![0-9])"
_KMARK = r"K\d{1,4}(?:\+\d{1,3})?(?![0-9])"
# what owners add after the place itself
_TAIL = (
    r"(?:[东南西北中]?(?:段|侧)?\d{1,5}号(?:院|楼)?)?"
    rf"(?:(?:往|向)[{_CJK}]{{1,6}}?方向)?"
    rf"(?:\s?{_KMARK})?"
    r"(?:\s?(?:出口|入口))?"
    r"(?:\s?[A-Z]\d{1,2}(?![0-9A-Za-z])|负\d层|地下\d层)?"
    r"(?:附近|旁边|门口|对面|边上|里面)?"
)

_PREFIXED = re.compile(
    # 现在/正在/实在/存在... are not "at"
    rf"(?<![现正实存所自好内外])(?:在|位于|到了|停在|困在|堵在)\s?"
    rf"(?P<place>(?:{_RUN_CHAR}{{1,20}}(?:{_SUFFIX_RE})|{_HIGHWAY}){_TAIL})",
    re.ASCII | re.IGNORECASE,
)
_STANDALONE = re.compile(
    rf"(?P<place>(?:"
    rf"{_RUN_CHAR}{{0,8}}(?:{_DISTINCT_RE})"
    rf"|{_RUN_CHAR}{{1,4}}[区县市]{_RUN_CHAR}{{1,8}}?(?:大道|大街|路|街)"
    rf"|{_HIGHWAY}(?:[{_CJK}]{{0,6}}(?:高速公路|高速|国道|省道))?(?=\s?K\d|[{_CJK}]{{0,6}}(?:高速|国道|省道))"
    rf"){_TAIL})",
    re.ASCII | re.IGNORECASE,
)
_ENGLISH = re.compile(
    r"\b(?i:on|at|near)\s+(?i:the\s+)?(?P<place>[AMGSI]-?\d{1,4}\b"
    r"|(?:[A-Z][a-z]+\s){1,3}(?:Road|Street|Avenue|Rd|St|Ave|Services|Station|Car\sPark|Motorway|Highway)\b)",
    re.ASCII,
)
# time words glued in front of a place ("今天广深高速") belong to the date extractor
_LEADING_NOISE = re.compile(r"^(?:今天|明天|昨天|后天|刚才|刚刚|早上|上午|下午|晚上|中午|凌晨|今晚|车子|车)+")
_HINT = re.compile(rf"[在位到停困堵]|{_DISTINCT_RE}|[区县市]|[GS]\d|\b(?:on|at|near)\b", re.IGNORECASE)
_MIN_CHARS = 2


def _spans(folded: str) -> list[tuple[int, int]]:
    spans = []
    for regex in (_PREFIXED, _STANDALONE, _ENGLISH):
        for match in regex.finditer(folded):
            start, end = match.span("place")
            noise = _LEADING_NOISE.match(folded, start, end)
            if noise:
                start = noise.end()
            # 在回家路上 / 在马路上: "on the way", not a road
            on_the_way = folded[end - 1] in "路道" and folded[end : end + 1] == "上"
            if end - start >= _MIN_CHARS and not on_the_way and not folded[start:end].isdigit():
                spans.append((start, end))
    return spans


def extract_places(text: str) -> list[Entity]:
    """Returns the places in the text, value the place as written (whitespace trimmed)."""
    if not text:
        return []
    folded = fold_width(text)
    if not _HINT.search(folded):
        return []
    # the prefixed and standalone forms overlap ("在广深高速K45" and "广深高速K45"): longest wins
    found: list[Entity] = []
    for start, end in sorted(_spans(folded), key=lambda s: (s[0] - s[1], s[0])):
        if any(e.start < end and start < e.end for e in found):
            continue
        raw = text[start:end]
        found.append(Entity("place", raw.strip(), start, end, raw))
    found.sort(key=lambda e: e.start)
    return found
