"""Service types owners ask for: 小保养, 大保养, 首保, 钣喷, 四轮定位, 年检, oil change...

The value is a service code. SERVICE_SYNONYMS maps each code to the words that name it; a
dealer whose booking system uses other codes passes its own mapping to `extract_services`.
At each position the longest synonym wins, so 大保养 is major_service, not 保养.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from nlu.entities.plates import fold_width
from nlu.parse import Entity

SERVICE_SYNONYMS: dict[str, tuple[str, ...]] = {
    # 保养 alone is the routine service; 宝养/保洋 are common pinyin-input typos
    "minor_service": (
        "小保养", "常规保养", "日常保养", "换机油", "换机滤", "机油机滤", "机油", "保养", "宝养", "保洋",
        "oil change", "service", "servicing", "minor service",
    ),
    "major_service": ("大保养", "换三滤", "三滤", "换四滤", "换火花塞", "火花塞", "major service", "full service"),
    "first_service": ("首保", "首次保养", "第一次保养", "头保", "first service"),
    "repair": ("维修", "修车", "检修", "修理", "修一下", "异响检查", "异响", "故障", "repair", "fix"),
    "bodywork": (
        "钣喷", "板喷", "钣金", "板金", "喷漆", "补漆", "刮花", "凹陷修复", "凹陷", "bodywork", "paint", "dent",
    ),
    "alignment": ("四轮定位", "做定位", "做个定位", "轮胎定位", "动平衡", "wheel alignment", "alignment"),
    "inspection": ("年检", "年审", "验车", "上线检测", "annual inspection", "inspection"),
    "detailing": ("洗车", "美容", "打蜡", "镀晶", "镀膜", "内饰清洗", "精洗", "car wash", "detailing", "wax"),
    "tyres": ("换轮胎", "补胎", "换胎", "轮胎", "胎压", "爆胎", "tyres", "tyre", "tires", "tire", "puncture"),
    "battery": ("换电瓶", "换电池", "电瓶", "搭电", "battery", "jump start"),
    "aircon": ("空调清洗", "加氟", "加冷媒", "空调", "air con", "aircon", "air conditioning", "a/c"),
    "brakes": ("刹车片", "换刹车", "刹车盘", "刹车油", "刹车", "brake pads", "brakes", "brake"),
}


def _is_english(word: str) -> bool:
    return word[:1].isascii() and word[:1].isalpha()


def _trie(words: list[str]) -> str:
    """Returns a regex matching exactly these words, longest first, as a prefix tree.

    re tries alternatives one by one at every position; a tree shares the prefixes (保养,
    保洋, 保 ...) so the ~130 synonyms cost a few character tests per position.
    """
    ends_here = "" in words
    by_first: dict[str, list[str]] = {}
    for word in words:
        if word:
            by_first.setdefault(word[0], []).append(word[1:])
    # a space in a synonym ("oil change") matches any run of whitespace
    branches = [(r"\s+" if c == " " else re.escape(c)) + _trie(rest) for c, rest in sorted(by_first.items())]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    # the optional group is greedy: the longer synonym is tried before the word ending here
    return f"(?:{body})?" if ends_here else body


def _key(matched: str) -> str:
    return " ".join(matched.lower().split())


@lru_cache(maxsize=32)
def _compile(items: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """Returns one regex over every synonym, longest match first, and synonym -> code."""
    code_of: dict[str, str] = {}
    for code, words in items:
        for word in words:
            code_of.setdefault(_key(word), code)
    english = [w for w in code_of if _is_english(w)]
    chinese = [w for w in code_of if not _is_english(w)]
    # English needs word boundaries ("fix" is not in "prefix", "tire" not in "retire") and
    # takes a plural s; Chinese has no spaces, so a Chinese synonym matches anywhere
    branches = []
    if english:
        branches.append(rf"\b{_trie(english)}s?\b")
    if chinese:
        branches.append(_trie(chinese))
    pattern = "|".join(branches) or r"(?!)"
    return re.compile(pattern, re.ASCII | re.IGNORECASE), code_of


def _items(mapping: Mapping[str, tuple[str, ...]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Returns the mapping as a hashable key for the compiled-regex cache."""
    # rebuilt on every call (about 3 µs) so a mapping edited in place is never served stale
    return tuple((code, tuple(words)) for code, words in mapping.items())


def extract_services(text: str, synonyms: Mapping[str, tuple[str, ...]] | None = None) -> list[Entity]:
    """Returns every service named in the text, value the service code."""
    if not text:
        return []
    mapping = SERVICE_SYNONYMS if synonyms is None else synonyms
    regex, code_of = _compile(_items(mapping))
    found = []
    for match in regex.finditer(fold_width(text)):
        key = _key(match.group())
        # "services", "tyres": the plural s the pattern allows is not in the synonym list
        code = code_of.get(key) or code_of.get(key[:-1])
        if code is None:
            continue
        start, end = match.span()
        found.append(Entity("service", code, start, end, text[start:end]))
    return found
