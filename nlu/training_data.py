"""Rasa 3 YAML training data: load it into examples, fingerprint it, write it back."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RASA_FORMAT_VERSION = "3.1"
# Rasa's three annotation forms: [粤B12345](plate), [粤B12345]{"entity": "plate"} and
# [粤B12345][{"entity": "plate"}, ...]; the bracketed text is what the owner wrote, so it stays.
_ENTITY = re.compile(r"\[(?P<text>[^\]]+?)\](?:\([^)]*\)|\{[^}]*\}|\[\{.*?\}\])")


class TrainingDataError(ValueError):
    """A training data file is not Rasa 3 NLU YAML; the message names the file."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    intent: str
    # retrieval intents only: the full key Rasa's ResponseSelector predicts, e.g. "ask_question/hours"
    response_key: str | None = None

    @property
    def rasa_intent(self) -> str:
        """Returns the intent as written in Rasa YAML: the response key if there is one."""
        return self.response_key or self.intent


def strip_entities(text: str) -> str:
    """Returns the text with Rasa entity annotations replaced by the annotated words."""
    return _ENTITY.sub(lambda match: match.group("text"), text)


def example_for(text: str, rasa_intent: str) -> Example:
    """Builds an example, splitting a retrieval intent `ask_question/hours` into intent and key."""
    intent, slash, _ = rasa_intent.partition("/")
    return Example(text=text, intent=intent, response_key=rasa_intent if slash else None)


def load_examples(data_dir: Path) -> list[Example]:
    """Loads the intent examples of one Rasa YAML file, or of every one under a directory."""
    if Path(data_dir).is_file():
        return _load_file(Path(data_dir))
    examples: list[Example] = []
    for path in sorted(p for p in Path(data_dir).rglob("*") if p.suffix in {".yml", ".yaml"}):
        examples.extend(_load_file(path))
    return examples


def _load_file(path: Path) -> list[Example]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path}: not valid YAML: {exc}") from exc
    # domain, stories and rules files may share the directory: they have no `nlu` key
    if not isinstance(document, dict) or "nlu" not in document:
        return []
    examples = []
    for item in document["nlu"] or []:
        # synonyms, regexes and lookup tables are entity helpers, not intent examples
        if not isinstance(item, dict) or "intent" not in item:
            continue
        rasa_intent = str(item["intent"]).strip()
        if not rasa_intent:
            raise TrainingDataError(f"{path}: an item has an empty intent name")
        for text in _example_texts(item.get("examples"), path=path, rasa_intent=rasa_intent):
            examples.append(example_for(text, rasa_intent))
    return examples


def _example_texts(raw: Any, *, path: Path, rasa_intent: str) -> list[str]:
    # Rasa accepts a "- text" block or a list of {text, metadata} items
    if isinstance(raw, str):
        lines = [line.strip() for line in raw.splitlines()]
        texts = [line[1:] for line in lines if line.startswith("-")]
    elif isinstance(raw, list):
        texts = [str(entry.get("text", "")) if isinstance(entry, dict) else str(entry) for entry in raw]
    else:
        raise TrainingDataError(f"{path}: intent {rasa_intent!r} has no examples")
    cleaned = (strip_entities(text).strip() for text in texts)
    return [text for text in cleaned if text]


def data_hash(examples: Iterable[Example]) -> str:
    """Returns a sha256 of the examples that ignores their order and the files they came from."""
    rows = sorted((e.intent, e.response_key or "", e.text) for e in examples)
    payload = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def to_yaml(examples: Iterable[Example]) -> str:
    """Renders the examples as Rasa 3 NLU YAML, one block per intent in first-seen order."""
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        # a newline inside a text would end its "- " line early; owners' line breaks mean a space
        by_intent.setdefault(example.rasa_intent, []).append(" ".join(example.text.split()))
    lines = [f'version: "{RASA_FORMAT_VERSION}"', "", "nlu:"]
    for rasa_intent, texts in by_intent.items():
        lines += [f"- intent: {rasa_intent}", "  examples: |"]
        lines += [f"    - {text}" for text in texts]
        lines.append("")
    return "\n".join(lines)


def write_yaml(examples: Iterable[Example], path: Path) -> None:
    """Writes the examples to a Rasa 3 NLU YAML file."""
    Path(path).write_text(to_yaml(examples), encoding="utf-8")
