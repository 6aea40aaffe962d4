"""Every text an owner can read exists in Chinese and in English, with the same placeholders."""
from __future__ import annotations

import re

from flows import templates

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_template_exists_in_both_languages() -> None:
    zh, en = templates.catalogue("zh"), templates.catalogue("en")
    assert sorted(set(zh) - set(en)) == [], "missing in English"
    assert sorted(set(en) - set(zh)) == [], "missing in Chinese"


def test_translations_use_the_same_placeholders() -> None:
    zh, en = templates.catalogue("zh"), templates.catalogue("en")
    for key, text in zh.items():
        if isinstance(text, str):
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(en[key])), key
        else:
            assert len(text) == len(en[key]), key


def test_unknown_language_falls_back_to_chinese() -> None:
    assert templates.text("goodbye", "fr") == templates.text("goodbye", "zh")
