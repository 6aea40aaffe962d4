"""The reminder and survey texts, one YAML file per language (texts.zh.yml, texts.en.yml).

A dealer may word a rule its own way (DealerConfig.reminders[code].template_zh/en). Its template
is rendered with the same placeholders; a placeholder it misspells renders empty, and a template
that cannot be rendered at all falls back to ours, so one bad template never stops a run.
"""
from __future__ import annotations

import logging
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

TEXT_DIR = Path(__file__).parent
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")


def language(lang: str | None) -> str:
    """Returns the owner's language if we write in it, else Chinese."""
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Returns the flat key -> text table of one language."""
    with open(TEXT_DIR / f"texts.{lang}.yml", encoding="utf-8") as handle:
        return _flatten(yaml.safe_load(handle) or {})


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def text(key: str, lang: str) -> str:
    """Returns one text unrendered (a missing key is a bug: KeyError)."""
    return catalogue(language(lang))[key]


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""  # a placeholder a dealer's template misspells renders empty


def choose(key: str, lang: str, own: str = "") -> str:
    """Returns the dealer's own template for the key if it can be rendered, else ours."""
    if own:
        try:
            own.format_map(_Params())
            return own
        except (ValueError, IndexError, AttributeError, KeyError) as exc:
            log.warning("dealer template cannot be rendered, using ours", extra={"key": key, "error": type(exc).__name__})
    return text(key, lang)


def fill(template: str, params: dict[str, Any]) -> str:
    """Fills a template's placeholders; one it does not know renders empty."""
    return template.format_map(_Params(params))


def render(key: str, lang: str, params: dict[str, Any], own: str = "") -> str:
    """Renders our text for the key, or the dealer's own template when it has a usable one."""
    return fill(choose(key, lang, own), params)


@cache
def format_date(day: date, lang: str) -> str:
    """2027年3月5日 / 5 March 2027."""
    if language(lang) == "en":
        return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"
