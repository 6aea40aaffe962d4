"""Texts the owner reads, one YAML file per language; code names a key, never a sentence."""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"


@cache
def catalogue(lang: str) -> dict[str, Any]:
    """Returns the flat key -> text (or list of button labels) table of one language.

    `<lang>.yml` holds the shared texts; each flow may keep its own in `<flow>.<lang>.yml`.
    A key defined twice is a mistake and raises.
    """
    table: dict[str, Any] = {}
    for path in [TEMPLATE_DIR / f"{lang}.yml", *sorted(TEMPLATE_DIR.glob(f"*.{lang}.yml"))]:
        with open(path, encoding="utf-8") as handle:
            part = _flatten(yaml.safe_load(handle) or {})
        if clash := table.keys() & part.keys():
            raise ValueError(f"{path.name}: template keys defined twice: {sorted(clash)}")
        table.update(part)
    return table


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def text(key: str, lang: str = DEFAULT_LANGUAGE, **params: Any) -> str:
    """Renders one template in the owner's language, falling back to Chinese."""
    table = catalogue(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    template = table.get(key)
    if template is None:
        template = catalogue(DEFAULT_LANGUAGE)[key]  # a missing key is a bug: KeyError
    return str(template).format(**params)


def labels(key: str, lang: str = DEFAULT_LANGUAGE) -> tuple[str, ...]:
    """Returns a list template (button labels) in the owner's language."""
    table = catalogue(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)
    return tuple(table.get(key) or catalogue(DEFAULT_LANGUAGE)[key])
